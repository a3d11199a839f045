"""The world: components plus resources, split into the three kinds of data.

* ``WorldStatic``: hashable, fixes every shape (agent and symbol counts, which rows belong
  to which strategy kind). Passed to jitted code as a static argument.
* ``WorldParams``: numbers a sweep may vmap (tick sizes, initial prices, per-kind
  parameter tables).
* ``WorldState``: everything that changes from tick to tick.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from flax import struct

from components.agents import Lender, OrderSlots, Wallet
from components.fundamentals import FundamentalsState, NewsParams
from components.indicators import IndicatorSpec, IndicatorState
from components.market import MarketState
from components.risk import RiskSpec, RiskState


@dataclasses.dataclass(frozen=True)
class KindStatic:
    """Rows ``[start, start + count)`` are agents of strategy kind ``name``.

    Each agent of the kind writes ``rows_per_agent`` order rows per tick, into the batch
    rows ``[batch_start, batch_start + count * rows_per_agent)``.
    """

    name: str
    start: int
    count: int
    rows_per_agent: int
    batch_start: int
    tier: int = 1
    """1: acts every tick; 2: reactive (acts when a wake condition fires)."""
    latency: int = 0
    """Ticks between a decision and its arrival at the engine (0: the same tick)."""

    @property
    def stop(self) -> int:
        return self.start + self.count

    @property
    def batch_rows(self) -> int:
        return self.count * self.rows_per_agent


@dataclasses.dataclass(frozen=True)
class WorldStatic:
    n_agents: int
    n_symbols: int
    symbols: tuple[str, ...]
    kinds: tuple[KindStatic, ...]
    sectors: tuple[str, ...] = ("market",)
    """Sector names; ``sector_of[s]`` indexes them."""
    sector_of: tuple[int, ...] = ()
    """Sector index of each symbol (empty: all in sector 0)."""
    indicators: IndicatorSpec = dataclasses.field(default_factory=IndicatorSpec)
    """Every indicator series some strategy kind needs; computed once per tick."""
    risk: RiskSpec = dataclasses.field(default_factory=RiskSpec)
    short_selling: bool = True
    """Sales beyond a position are allowed, backed by a borrow from the symbol's pool."""
    locate: bool = True
    """Resting short sales hold their borrow (and pay for it), not only filled shorts."""
    background: Any = None
    """The tier 3 background pool's shapes (``systems.background.BackgroundStatic``), or
    None. Its order rows follow every kind's rows in the batch."""

    @property
    def agent_rows(self) -> int:
        """Batch rows written by agents (every kind's block), before the pool's rows."""
        return sum(k.batch_rows for k in self.kinds)

    @property
    def batch_rows(self) -> int:
        """Length of the fixed-size order batch of one tick."""
        return self.agent_rows + (self.background.batch_rows if self.background is not None else 0)

    def kind(self, name: str) -> KindStatic:
        for k in self.kinds:
            if k.name == name:
                return k
        raise KeyError(name)


@struct.dataclass
class WorldParams:
    tick_size: jax.Array  # i64[S] units
    initial_price: jax.Array  # i64[S] units
    outstanding: jax.Array  # i64[S] shares outstanding
    pool: jax.Array  # i64[S] shares the lender may lend (the borrow pool)
    borrow_rate: jax.Array  # i64[] fee per tick in parts per 1e9 of the borrowed value
    max_short: jax.Array  # i64[N] largest short per symbol each agent may hold, shares
    news: NewsParams  # news arrival rates, sizes, scheduled events, valuation guards
    anchoring: jax.Array  # f64[] weight of the fair value per tick in liquidity providers' prices
    kinds: dict[str, Any]  # kind name -> that strategy's Params pytree (rows of the kind)
    background: Any = None  # the background pool's BackgroundParams, or None


@struct.dataclass
class WorldState:
    wallet: Wallet
    slots: OrderSlots
    lender: Lender
    market: MarketState
    indicators: IndicatorState  # per-symbol indicator state, one bar absorbed per tick
    risk: RiskState  # per-agent running risk statistics
    fundamentals: FundamentalsState  # per-symbol fundamentals, macro, sentiment, fair value
    tick: jax.Array  # i64[] ticks completed
    key: jax.Array  # PRNG key (root of the run; per-tick keys are folded from it)
    kinds: dict[str, Any] = struct.field(default_factory=dict)
    """Kind name -> that kind's own mutable state (e.g. tier 2 wake conditions), for kinds
    whose module defines ``init_state``; changed only in the write phase."""
    delayed: dict[str, Any] = struct.field(default_factory=dict)
    """Kind name -> OrderBatch [latency, rows]: orders decided but not yet arrived, for
    kinds with order latency; slot ``tick % latency`` holds those decided at that tick."""
    background: Any = None
    """The background pool's aggregate state (``systems.background.BackgroundState``)."""
    books: Any = None
    """The market's books (``components.book.Book``, ``[S, 2, capacity]``) when the whole
    tick runs on the device (``qtg.core.rollout``); None when a host engine holds them."""
