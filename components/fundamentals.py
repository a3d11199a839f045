"""Fundamentals and news: what each symbol is worth, and what moves it.

* ``FundamentalsState``: the world resource (rows are symbols, plus the macro scalars and
  one sentiment row per event kind), updated once per tick by
  ``systems.fundamentals.update_fundamentals``.
* ``NewsParams``: numbers a sweep may vmap: per event kind the arrival rate, minimum
  interval, size distribution, sentiment impulse and decay; the scheduled events; the
  fair-value guards (minimum spread, P/E bounds, one-tick floor); the fundamentals'
  random walk (drift, volatility, jump rate and size of log EPS per tick).
* The event record: each tick the stage writes ``frame.events`` f64[len(EVENT_FIELDS),
  4 + E]: one slot per event kind for a random arrival (``EVENT_KINDS`` order), then one
  slot per scheduled event (config order). ``valid`` is 1.0 where an event happened.

Fair value is in units (currency * SCALE) as float64; EPS is in currency.
"""

from __future__ import annotations

import jax
from flax import struct

EVENT_KINDS: tuple[str, ...] = ("earnings", "guidance", "rate", "sector")
"""Event kinds; their index is the row of ``FundamentalsState.sentiment`` and the code in
the event record's ``kind`` field."""

EARNINGS, GUIDANCE, RATE, SECTOR = range(len(EVENT_KINDS))

EVENT_FIELDS: tuple[str, ...] = ("valid", "kind", "target", "size", "fair_before", "fair_after")
"""Rows of the event record ``frame.events`` f64[len(EVENT_FIELDS), 4 + E]:

* ``valid``: 1.0 if the slot holds an event this tick, else 0.0 (the other fields are
  then meaningless);
* ``kind``: index into ``EVENT_KINDS``;
* ``target``: symbol index (earnings, guidance), sector index (sector), -1 (rate: all);
* ``size``: the event's size (see ``qtg.core.config.ScheduledEvent.size``);
* ``fair_before``: mean fair value (units) of the affected symbols in force before the tick;
* ``fair_after``: the same after the tick's update (all of this tick's events, decay included).
"""

NEVER: int = -(2**40)
"""``last_event`` before any random event: far enough back that any interval has passed."""

SENTIMENT_BOUNDS: tuple[float, float] = (-0.9, 5.0)
"""Total sentiment of a symbol (sum over kinds) is clipped to this before it scales fair value."""


@struct.dataclass
class FundamentalsState:
    """Per-symbol fundamentals, macro state and sentiment. Rows are symbols."""

    eps: jax.Array  # f64[S] earnings per share, currency
    growth: jax.Array  # f64[S] growth estimate per year
    payout: jax.Array  # f64[S] payout ratio in [0, 1]
    rate: jax.Array  # f64[] risk-free rate per year (>= 0)
    erp: jax.Array  # f64[] equity risk premium per year
    sentiment: jax.Array  # f64[4, S] sentiment per event kind (fraction of fair value)
    last_event: jax.Array  # i64[4] tick of the last random event of each kind (NEVER: none)
    fair: jax.Array  # f64[S] fair value in units: Gordon value * (1 + clipped total sentiment)
    news_move: jax.Array  # f64[S] log change of fair value made by the last tick's news
    # events (against the same tick without them): public information
    news_tick: jax.Array  # i64[4, S] tick of the last event (random or scheduled) of each
    # kind that touched each symbol (NEVER: none). An event of tick T is seen by decisions
    # at tick T + 1, when ``news_tick == state.tick - 1``.


@struct.dataclass
class NewsParams:
    """Event arrivals and sizes per kind ([4], ``EVENT_KINDS`` order), the scheduled events
    ([E], E may be 0) and the fair-value guards."""

    rate: jax.Array  # f64[4] probability per tick of a random event (when the interval allows)
    min_interval: jax.Array  # i64[4] ticks at least between two random events of a kind
    mean: jax.Array  # f64[4] mean event size (normal)
    std: jax.Array  # f64[4] standard deviation of the event size
    sentiment: jax.Array  # f64[4] sentiment impulse per unit of size
    decay: jax.Array  # f64[4] sentiment kept per tick: exp(-1 / duration)
    tick: jax.Array  # i64[E] tick of each scheduled event
    kind: jax.Array  # i32[E] its kind (index into EVENT_KINDS)
    target: jax.Array  # i32[E] symbol (earnings, guidance), sector (sector) index; -1 for rate
    size: jax.Array  # f64[E] its size
    min_spread: jax.Array  # f64[] discount rate minus growth is at least this
    pe_lo: jax.Array  # f64[] fair value >= pe_lo * max(eps, 0)
    pe_hi: jax.Array  # f64[] fair value <= pe_hi * max(eps, 0)
    sector_of: jax.Array  # i32[S] sector index of each symbol
    tick_size: jax.Array  # f64[S] units; fair value is at least one tick
    drift: jax.Array  # f64[] mean log change of EPS per tick (the fundamentals' random walk)
    volatility: jax.Array  # f64[] its standard deviation per tick
    jump_rate: jax.Array  # f64[] probability per tick and symbol of an EPS jump
    jump_std: jax.Array  # f64[] standard deviation of a jump's log size
