"""Fixed-point money and prices.

Every price and every amount of cash in qtg is an integer count of 1/10,000 of the
currency ("units"), so accounting is exact and conservation is asserted with ``==``.
A price of 100.25 is stored as ``1_002_500``. Each symbol has a tick size in units
(default 100 = 0.01); a valid order price is a positive multiple of its symbol's tick.
Quantities are whole shares (int64).
"""

from __future__ import annotations

import numpy as np

SCALE: int = 10_000
"""Units per one unit of currency."""

DEFAULT_TICK: int = 100
"""Default tick size in units (0.01 of the currency)."""


def to_fixed(x: float | np.ndarray) -> np.ndarray | int:
    """Convert currency (float) to fixed-point units, rounding to the nearest unit."""
    out = np.rint(np.asarray(x, dtype=np.float64) * SCALE).astype(np.int64)
    return int(out) if out.ndim == 0 else out


def to_float(x: int | np.ndarray) -> float | np.ndarray:
    """Convert fixed-point units to currency as float64 (for display and plots only)."""
    out = np.asarray(x, dtype=np.float64) / SCALE
    return float(out) if out.ndim == 0 else out

