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


def time_calls(call, repeats: int):
    """``call()`` once (compiling) and then ``repeats`` times, each to completion
    (``jax.block_until_ready``): ``(first_s, median_s, out)``, ``out`` the last call's."""
    import time

    import jax
    import numpy as np

    t0 = time.perf_counter()
    out = jax.block_until_ready(call())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return first, float(np.median(times)), out
