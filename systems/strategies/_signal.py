"""Shared parts of the indicator-driven (signal) strategies: limits, column lookup, rows.

A signal trader holds at most one symbol, long only. Each tick its strategy turns an
indicator into a desired trade, ``want`` shares (> 0 buy, < 0 sell, 0 nothing), and
``trade_rows`` turns that into the agent's two order rows: a CANCEL of its resting order
(it never means to leave one; the row is idle unless a slot is live) and an aggressive
immediate-or-cancel order priced ``collar`` through the reference. The order is sized by
the smallest of the wish, the agent's per-order ``size``, the room left under its
``max_position`` and the cash or shares not reserved by resting orders, so it can neither
overshoot its limit nor fail the pre-trade checks.

Indicator periods are ranges ``[lo, hi]`` of integers like every other per-agent
parameter: each agent draws one period uniformly, and the kind's ``IndicatorSpec`` asks
for every period in the range, so any draw has its column.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.agents import NO_ORDER, order_id
from components.orders import OrderBatch, OrderType, Side
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.fusion import materialised
from systems.strategies._rows import (
    affordable,
    cancel_resting,
    collar_price,
    holdings_in_own_symbol,
    interleave,
)

@dataclasses.dataclass
class TradeConfig:
    """Config fields every signal strategy has; each kind's ``Config`` extends it."""

    count: int = 0
    size: list[int] = dataclasses.field(default_factory=lambda: [10, 50])
    """Range of per-order sizes in shares (each agent draws one)."""
    max_position: list[int] = dataclasses.field(default_factory=lambda: [200, 500])
    """Range of the largest position an agent may hold, in shares (each agent draws one)."""
    collar: float = 0.02
    """How far through the reference an order may reach (fraction)."""
    cash: float = 100_000.0
    """Starting cash per agent, in currency."""
    shares: int = 0
    """Starting shares per agent in its symbol."""
    latency: int = 0
    """Ticks between a decision and its arrival at the engine: an order decided at tick t
    is validated and matched at t + latency (0: the same tick)."""


TRADE_BOUNDS = {  # allowed values of the TradeConfig fields (default: >= 0)
    "size": (1, None),
    "latency": (0, 1000),
    "collar": (0.0, 0.5),
}


@struct.dataclass
class Trade:
    """Per-agent trading limits, one row per agent of the kind."""

    symbol: jax.Array  # i32[M]
    size: jax.Array  # i64[M] shares per order
    max_position: jax.Array  # i64[M] shares
    collar: jax.Array  # f64[M] fraction of the reference price


def make_trade(cfg: TradeConfig, count: int, rng: np.random.Generator, n_symbols: int) -> Trade:
    """Draw each agent's limits; symbols are assigned round-robin."""
    return Trade(
        symbol=jnp.asarray(np.arange(count) % n_symbols, jnp.int32),
        size=jnp.asarray(draw_int(rng, cfg.size, count)),
        max_position=jnp.asarray(draw_int(rng, cfg.max_position, count)),
        collar=jnp.full(count, cfg.collar, jnp.float64),
    )


def trade_holdings(cfg: TradeConfig, trade: Trade, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return holdings_in_own_symbol(cfg.cash, cfg.shares, trade.symbol, n_symbols)


def draw_int(rng: np.random.Generator, bounds: list[int], count: int) -> np.ndarray:
    """``count`` integers drawn uniformly from the closed range ``bounds = [lo, hi]``. i64."""
    lo, hi = int(bounds[0]), int(bounds[1])
    return rng.integers(lo, hi + 1, count).astype(np.int64)


def period_range(bounds: list[int]) -> tuple[int, ...]:
    """Every integer of the closed range ``[lo, hi]``: the periods an agent may draw."""
    return tuple(range(int(bounds[0]), int(bounds[1]) + 1))


def check_fast_slow(fast: list[int], slow: list[int], what: str) -> None:
    """ValueError unless every period of range ``fast`` is below every one of ``slow``."""
    if fast[1] >= slow[0]:
        raise ValueError(
            f"{what}: every fast period must be < every slow period, got fast {fast}, slow {slow}"
        )


def column(table: tuple, key: jax.Array) -> jax.Array:
    """Column of each agent's period set in a sorted spec table, by equality match.

    ``table``: the spec's period sets (ints, or tuples of numbers), static; ``key``:
    [n] or [n, K] the agents' period sets, each present in the table. Returns i32[n].
    """
    t = jnp.asarray(np.asarray(table, np.float64).reshape(len(table), -1))  # [P, K]
    k = jnp.asarray(key, jnp.float64).reshape(key.shape[0], -1)  # [n, K]
    hit = (k[:, None, :] == t[None, :, :]).all(-1)  # [n, P]
    return jnp.argmax(hit, axis=1).astype(jnp.int32)


def at(values: jax.Array, symbol: jax.Array, col: jax.Array) -> jax.Array:
    """``values[symbol[i], col[i]]`` per agent: a [S, P] indicator read per agent. [n]"""
    return values[symbol, col]


def toward(target: jax.Array, position: jax.Array) -> jax.Array:
    """The trade that takes ``position`` to ``target`` (shares; > 0 buys). i64[n]"""
    return (target - position).astype(jnp.int64)


def trade_rows(
    static: WorldStatic,
    kind: KindStatic,
    world: WorldParams,
    t: Trade,
    state: WorldState,
    frame: dict,
    want: jax.Array,
) -> OrderBatch:
    """Each agent's wish ``want`` i64[n] (shares, > 0 buy, < 0 sell) -> 2 rows per agent.

    Rows per agent: a CANCEL of its live resting order (buy slot first), then an IOC order
    ``collar`` through the reference. The IOC's size is capped by ``size``, the room under
    ``max_position`` (counting a live resting buy as if filled), unreserved cash at the
    order's price (buys) and unreserved shares plus the agent's short room (sells; kinds
    without ``max_short`` are long only). Returns ``count * 2`` rows.
    """
    n = kind.count
    rows = kind.start + jnp.arange(n)
    sym = t.symbol
    tick = world.tick_size[sym]
    ref = frame.view.ref[sym]
    slots = state.slots

    buy = want > 0
    side = jnp.where(buy, Side.BUY, Side.SELL).astype(jnp.int8)
    price = collar_price(buy, ref, t.collar, tick)
    live_buy = slots.id[rows, Side.BUY] != NO_ORDER
    pending_buy = jnp.where(live_buy & (slots.symbol[rows, Side.BUY] == sym), slots.remaining[rows, Side.BUY], 0)
    room = t.max_position - state.wallet.position[rows, sym] - pending_buy
    backed = affordable(state, rows, sym, buy, price, world.max_short[rows])
    cap = jnp.where(buy, jnp.minimum(room, backed), backed)
    qty = jnp.maximum(jnp.minimum(jnp.minimum(jnp.abs(want), t.size), cap), 0).astype(jnp.int64)
    # Computed once: the rows' price, qty and valid are separate loops, and each would
    # otherwise run the sizing (the tick: about 0.09 ms less at seed_100k).
    price, qty = materialised(price), materialised(qty)

    new = OrderBatch(
        valid=(want != 0) & (qty > 0),
        id=order_id(state.tick, rows, side.astype(jnp.int64), static.n_agents),
        agent=rows.astype(jnp.int32),
        symbol=sym,
        side=side,
        kind=jnp.full(n, OrderType.IOC, jnp.int8),
        price=price,
        qty=qty,
    )

    cancel = cancel_resting(state, rows)
    return interleave(cancel, new)
