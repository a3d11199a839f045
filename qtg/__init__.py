"""THE APPLICATION: world assembly, the schedule, entry points, hooks and reports."""

import jax

# Money is int64 fixed point; decisions may use float64. Enable before any array exists.
jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
