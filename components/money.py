"""Fixed-point money and prices.

Every price and every amount of cash in qtg is an integer count of 1/10,000 of the
currency ("units"), so accounting is exact and conservation is asserted with ``==``.
A price of 100.25 is stored as ``1_002_500``. Each symbol has a tick size in units
(default 100 = 0.01); a valid order price is a positive multiple of its symbol's tick.
Quantities are whole shares (int64).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

SCALE: int = 10_000
"""Units per one unit of currency."""

DEFAULT_TICK: int = 100
"""Default tick size in units (0.01 of the currency)."""

INT64_MAX: int = 2**63 - 1
"""Largest int64: the ceiling of every saturating sum."""

MAX_PRICE: int = 10**9
"""Largest order price in units (100,000.00 of the currency). Both engines refuse a priced
order above it (``Reason.BAD_PRICE``), so no order rests above it and no fill happens above
it."""

MAX_QTY: int = 10**9
"""Largest order quantity in shares (one billion). Both engines refuse an order above it
(``Reason.BAD_QTY``), MODIFY's new quantity included."""

MAX_NOTIONAL: int = MAX_PRICE * MAX_QTY
"""Largest value of one order or fill, ``price * qty`` in units: 10**18, below 2**63 / 9,
so a product of a price and a quantity within the bounds always fits in int64 (with
room for the sum of several of them and a cash balance)."""


def to_fixed(x: float | np.ndarray) -> np.ndarray | int:
    """Convert currency (float) to fixed-point units, rounding to the nearest unit."""
    out = np.rint(np.asarray(x, dtype=np.float64) * SCALE).astype(np.int64)
    return int(out) if out.ndim == 0 else out


def to_float(x: int | np.ndarray) -> float | np.ndarray:
    """Convert fixed-point units to currency as float64 (for display and plots only)."""
    out = np.asarray(x, dtype=np.float64) / SCALE
    return float(out) if out.ndim == 0 else out



INT64_MAX: int = 2**63 - 1

ECONOMY_MAX: int = INT64_MAX // 4
"""The most the economy's totals may be, in units: every agent's cash plus every share
outstanding and every share of the borrow pools valued at ``MAX_PRICE`` (no order, so no
trade, can be priced above it). A quarter of int64: equity sums an agent's positions at
twice their marks (``systems.measure.equity``), and twice this total still leaves half of
int64 free."""


RATE_SCALE: int = 1_000_000_000
"""Rates (fractions) as integers: parts per 1e9."""


MAX_RATE: int = 4_000_000
"""Largest rate ``apply_rate`` takes (0.4%), so its partial products stay exact."""


def floor_div(a, b):
    """``a // b`` for int64 ``0 <= a < 2**52`` and ``0 < b < 2**52``, exactly.

    Divides in float64 and corrects the quotient by one either way, which is several times
    cheaper on a CPU than an int64 division.
    """
    q = jnp.floor(a.astype(jnp.float64) / b.astype(jnp.float64)).astype(jnp.int64)
    q = q - (q * b > a)
    return q + ((q + 1) * b <= a)


def apply_rate(value, rate):
    """``floor(value * rate / RATE_SCALE)`` exactly in int64, for ``0 <= value < 2**52``
    units and an integer ``0 <= rate <= MAX_RATE`` (a fraction in parts per 1e9)."""
    whole = floor_div(value, jnp.asarray(RATE_SCALE, jnp.int64))
    part = value - whole * RATE_SCALE
    return whole * rate + floor_div(part * rate, jnp.asarray(RATE_SCALE, jnp.int64))


def saturating_add(a, b):
    """``min(a + b, INT64_MAX)`` for int64 ``a, b >= 0``, without ever wrapping."""
    return a + jnp.minimum(b, INT64_MAX - a)


def saturating_sum(x, axis: int):
    """Sum of int64 ``x >= 0`` over ``axis``, capped at ``INT64_MAX``: exact wherever the
    true sum fits, ``INT64_MAX`` wherever it would not (a plain sum would wrap to a small
    or negative number). Saturating addition of non-negative numbers is associative, so
    the order XLA reduces in does not matter."""
    return jax.lax.reduce(x, jnp.zeros((), x.dtype), saturating_add, (axis % x.ndim,))
