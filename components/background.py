"""The tier 3 background pool's data: its shapes, its parameters and its aggregate account.

The pool has no agent rows; :mod:`systems.background` draws its orders and settles its
fills in aggregate (see there for the model).
"""

from __future__ import annotations

import dataclasses

import jax
from flax import struct

BACKGROUND_ID = 1 << 62
"""First order id of the pool; agents' ids stay far below it."""

@dataclasses.dataclass(frozen=True)
class BackgroundStatic:
    """Shapes of the pool: its batch rows are ``[batch_start, batch_start + batch_rows)``:
    ``R = n_symbols * cap`` rows of new orders (symbol-major), then ``R`` cancel rows."""

    members: int
    n_symbols: int
    cap: int  # order rows per symbol per tick
    lifetime: int  # ticks a resting pool order lives
    agent_base: int  # first virtual owner (== the number of agents)
    batch_start: int
    vol_periods: tuple[int, ...] = ()  # (short, long) ATR periods; () = no volatility boost

    @property
    def rows(self) -> int:
        return self.n_symbols * self.cap

    @property
    def batch_rows(self) -> int:
        return 2 * self.rows


@struct.dataclass
class BackgroundParams:
    rate: jax.Array  # f64[] expected orders per symbol per tick before the boost
    aggressive: jax.Array  # f64[]
    offset_mean: jax.Array  # f64[] fraction of the reference price
    offset_cap: jax.Array  # f64[]
    size_mu: jax.Array  # f64[] log of the median size
    size_sigma: jax.Array  # f64[]
    size_cap: jax.Array  # i64[]
    vol_feedback: jax.Array  # f64[]
    boost_lo: jax.Array  # f64[]
    boost_hi: jax.Array  # f64[]
    gain: jax.Array  # f64[] mood -> bias steepness
    max_bias: jax.Array  # f64[] largest |P(buy) - 0.5| * 2
    contrarian: jax.Array  # f64[] fraction leaning against the mood
    decay: jax.Array  # f64[] mood kept per tick
    max_drift: jax.Array  # f64[] runaway bound on cash and positions (fraction of opening)


@struct.dataclass
class BackgroundState:
    resting: jax.Array  # i64[lifetime, R] ids still resting, by the tick they were sent (NO_ORDER: none)
    cash: jax.Array  # i64[] units
    position: jax.Array  # i64[S] shares
    opening_cash: jax.Array  # i64[]
    opening_position: jax.Array  # i64[S]
    bought: jax.Array  # i64[S] shares bought so far
    sold: jax.Array  # i64[S] shares sold so far
    buy_value: jax.Array  # i64[S] units paid
    sell_value: jax.Array  # i64[S] units received
    sent: jax.Array  # i64[2] orders sent so far: buys, sells
    mood: jax.Array  # f64[S] the pool's sentiment (0 = neutral)
    seen: jax.Array  # f64[S] total news sentiment absorbed into the mood so far
