"""Shared order-row builders for strategy systems (vectorised over a kind's agents)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from components.agents import NO_ORDER, order_id
from components.market import MarketView
from components.money import floor_div, to_fixed
from components.orders import OrderBatch, OrderType, Side
from components.world import WorldParams, WorldState
from systems.ticks import ceil_tick, floor_tick


def available_cash(state: WorldState, rows: jax.Array) -> jax.Array:
    """Cash not reserved by the agents' resting buy orders. i64[n] units."""
    slots = state.slots
    live = slots.id[rows, 0] != NO_ORDER
    reserved = jnp.where(live, slots.price[rows, 0] * slots.remaining[rows, 0], 0)
    return state.wallet.cash[rows] - reserved


def available_shares(state: WorldState, rows: jax.Array, symbol: jax.Array) -> jax.Array:
    """Shares of ``symbol`` not reserved by the agents' resting sell orders. i64[n]."""
    slots = state.slots
    live = (slots.id[rows, 1] != NO_ORDER) & (slots.symbol[rows, 1] == symbol)
    reserved = jnp.where(live, slots.remaining[rows, 1], 0)
    return state.wallet.position[rows, symbol] - reserved


def collar_price(buy: jax.Array, ref: jax.Array, collar: jax.Array, tick: jax.Array) -> jax.Array:
    """An aggressive price ``collar`` (fraction) through the reference: rounded up to the
    tick for buys, down for sells. i64[n] units."""
    return jnp.where(
        buy, ceil_tick(ref * (1.0 + collar), tick), floor_tick(ref * (1.0 - collar), tick)
    )


def affordable(
    state: WorldState,
    rows: jax.Array,
    symbol: jax.Array,
    buy: jax.Array,
    price: jax.Array,
    max_short: jax.Array | int = 0,
) -> jax.Array:
    """Largest order the agents can back: unreserved cash // price for buys; for sells,
    unreserved shares of ``symbol`` plus the room left under ``max_short`` (shares the
    agent may be short; 0 = long only). Never negative. i64[n] shares."""
    return jnp.where(
        buy,
        floor_div(jnp.maximum(available_cash(state, rows), 0), price),
        jnp.maximum(available_shares(state, rows, symbol) + max_short, 0),
    )


def cancel_resting(state: WorldState, rows: jax.Array, when: jax.Array | bool = True) -> OrderBatch:
    """One CANCEL row per agent for its resting order (the buy slot's if both are live),
    valid where ``when`` and the agent has a live slot. Rows [n]."""
    slots = state.slots
    live_buy = slots.id[rows, Side.BUY] != NO_ORDER
    live_sell = slots.id[rows, Side.SELL] != NO_ORDER
    side = jnp.where(live_buy, Side.BUY, Side.SELL)
    n = rows.shape[0]
    return OrderBatch(
        valid=when & (live_buy | live_sell),
        id=slots.id[rows, side],
        agent=rows.astype(jnp.int32),
        symbol=slots.symbol[rows, side],
        side=side.astype(jnp.int8),
        kind=jnp.full(n, OrderType.CANCEL, jnp.int8),
        price=jnp.zeros(n, jnp.int64),
        qty=jnp.zeros(n, jnp.int64),
    )


def ioc_rows(
    n_agents: int, tick: jax.Array, rows: jax.Array, symbol: jax.Array, buy: jax.Array,
    price: jax.Array, qty: jax.Array, valid: jax.Array,
) -> OrderBatch:
    """One immediate-or-cancel row per agent: a buy where ``buy``, else a sell, of ``qty``
    shares at ``price`` (i64 units) on ``symbol``, sent where ``valid``. Rows [n]."""
    side = jnp.where(buy, Side.BUY, Side.SELL).astype(jnp.int8)
    return OrderBatch(
        valid=valid,
        id=order_id(tick, rows, side.astype(jnp.int64), n_agents),
        agent=rows.astype(jnp.int32),
        symbol=symbol,
        side=side,
        kind=jnp.full(rows.shape, OrderType.IOC, jnp.int8),
        price=price,
        qty=qty,
    )


def quote_rows(
    n_agents: int,
    state: WorldState,
    rows: jax.Array,
    side: int,
    symbol: jax.Array,
    price: jax.Array,
    qty: jax.Array,
) -> OrderBatch:
    """One row per agent keeping a resting quote on ``side`` at (price, qty).

    A live slot is modified (or left alone when nothing changed); an empty slot gets a new
    LIMIT order; ``qty == 0`` cancels a live quote. Rows: i64/i32/i8 [n].
    """
    slot_id = state.slots.id[rows, side]
    live = slot_id != NO_ORDER
    unchanged = (
        live
        & (state.slots.price[rows, side] == price)
        & (state.slots.remaining[rows, side] == qty)
        & (state.slots.symbol[rows, side] == symbol)
    )
    quoting = qty > 0
    kind = jnp.where(quoting, jnp.where(live, OrderType.MODIFY, OrderType.LIMIT), OrderType.CANCEL)
    # A quote cannot move to another symbol by MODIFY: cancel it first.
    moved = live & (state.slots.symbol[rows, side] != symbol)
    kind = jnp.where(moved, OrderType.CANCEL, kind)
    valid = jnp.where(quoting, ~unchanged, live)
    new_id = order_id(state.tick, rows, side, n_agents)
    return OrderBatch(
        valid=valid,
        id=jnp.where(live, slot_id, new_id),
        agent=rows.astype(jnp.int32),
        symbol=jnp.where(moved, state.slots.symbol[rows, side], symbol).astype(jnp.int32),
        side=jnp.full(rows.shape, side, jnp.int8),
        kind=kind.astype(jnp.int8),
        price=price.astype(jnp.int64),
        qty=qty.astype(jnp.int64),
    )


def stuck_quotes(state: WorldState, rows: jax.Array, side: int, qty: jax.Array, allowed: jax.Array) -> jax.Array:
    """Agents whose live quote on ``side`` would be cancelled only because nothing is left
    to back a new one (a MODIFY is backed in full on top of the order it replaces) while
    the side is still ``allowed``: such a quote stays where it is rather than being
    cancelled every other tick. bool[n]"""
    live = state.slots.id[rows, int(side)] != NO_ORDER
    return live & (qty == 0) & allowed

def two_sided_quotes(n_agents: int, state: WorldState, rows: jax.Array, symbol: jax.Array, bid: jax.Array,
                     ask: jax.Array, bid_qty: jax.Array, ask_qty: jax.Array, can_bid: jax.Array,
                     can_ask: jax.Array) -> OrderBatch:
    """Each agent's bid and ask rows (:func:`quote_rows`), agent i's two rows adjacent: a
    live quote that could only be re-sized to nothing while its side is still allowed
    stays where it is (:func:`stuck_quotes`). Rows [2n]."""
    bids = quote_rows(n_agents, state, rows, int(Side.BUY), symbol, bid, bid_qty)
    asks = quote_rows(n_agents, state, rows, int(Side.SELL), symbol, ask, ask_qty)
    stay_bid = stuck_quotes(state, rows, Side.BUY, bid_qty, can_bid)
    stay_ask = stuck_quotes(state, rows, Side.SELL, ask_qty, can_ask)
    return interleave(bids.replace(valid=bids.valid & ~stay_bid), asks.replace(valid=asks.valid & ~stay_ask))

def interleave(*batches: OrderBatch) -> OrderBatch:
    """Rows of k batches of length n as one batch of length k*n: agent i's rows adjacent."""
    return jax.tree.map(lambda *xs: jnp.stack(xs, axis=1).reshape(-1), *batches)


def holdings_in_own_symbol(
    cash: float, shares: int, symbol: jax.Array, n_symbols: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each agent starts with ``cash`` (currency) and ``shares`` of its own ``symbol``.

    Returns cash i64[n] in units and positions i64[n, S] in shares.
    """
    symbol = np.asarray(symbol)
    position = np.zeros((symbol.shape[0], n_symbols), np.int64)
    position[np.arange(symbol.shape[0]), symbol] = shares
    return np.full(symbol.shape[0], to_fixed(cash), np.int64), position


def value_estimate(
    world: WorldParams, view: MarketView, symbol: jax.Array, anchor: jax.Array, base: jax.Array | None = None
) -> jax.Array:
    """A liquidity provider's estimate of value (units, f64[n]): ``base`` (default: the
    reference price) moved by the last tick's public news (``view.news``), then pulled
    toward the fair value by ``market.anchoring * anchor`` of the gap. The fair value's own
    random walk reaches prices only through this pull (and informed traders), so the market
    discovers it slowly: the mispricing half-life is about ln 2 / (anchoring * anchor) ticks."""
    base = view.ref[symbol] if base is None else base
    informed = base * jnp.exp(view.news[symbol])
    return informed + world.anchoring * anchor * (view.fair[symbol] - informed)


def ioc_per_symbol(n_agents: int, tick: jax.Array, rows: jax.Array, valid: jax.Array, buy: jax.Array,
                   price: jax.Array, qty: jax.Array) -> OrderBatch:
    """One immediate-or-cancel row per agent ``rows`` (i32[n]) and symbol, row ``i * S + s``
    for agent ``i`` and symbol ``s``, from [n, S] arrays: ``valid``, ``buy`` (else a sale),
    ``price`` and ``qty``. Ids repeat across one agent's same-side rows of a tick: IOC
    orders never rest, so no id is ever live when the next arrives."""
    n, s = valid.shape
    side = jnp.where(buy, Side.BUY, Side.SELL).astype(jnp.int8)
    agent = jnp.broadcast_to(rows[:, None], (n, s))
    return OrderBatch(
        valid=valid.reshape(-1),
        id=order_id(tick, agent, side.astype(jnp.int64), n_agents).reshape(-1),
        agent=agent.astype(jnp.int32).reshape(-1),
        symbol=jnp.broadcast_to(jnp.arange(s, dtype=jnp.int32)[None, :], (n, s)).reshape(-1),
        side=side.reshape(-1),
        kind=jnp.full(n * s, OrderType.IOC, jnp.int8),
        price=price.astype(jnp.int64).reshape(-1),
        qty=qty.astype(jnp.int64).reshape(-1),
    )

