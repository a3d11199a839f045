"""THE APPLICATION: world assembly, the schedule, entry points, hooks and reports."""

import jax

# Money is int64 fixed point; decisions may use float64. Enable before any array exists.
jax.config.update("jax_enable_x64", True)
# The non-partitionable threefry draws random bits about 3x faster on a CPU for the
# million-row draws of a large world (it only matters for sharding over several devices,
# which qtg does not do). Same seed, same numbers, either way.
try:
    jax.config.update("jax_threefry_partitionable", False)
except AttributeError:  # a JAX without the flag
    pass

__version__ = "0.1.0"
