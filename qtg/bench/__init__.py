"""The project's benchmarks and profilers; ``python -m qtg.bench`` runs them and prints JSON.

One module per subject: ``world`` (whole ticks by agent count), ``matching`` (the engines),
``indicators``, ``wake``, ``storage``, ``tui``, and ``profile_tick`` (XLA's per-op trace charged to
project lines).
"""

from __future__ import annotations

import os
import platform


def machine() -> dict:
    """A description of where the numbers were taken."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
    }
