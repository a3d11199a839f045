"""measure: the tick's fills and book -> market state (last price, volume, best quotes)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from components.frame import Frame
from components.world import WorldParams, WorldState, WorldStatic
from systems.match import BOOK_FIELDS, FILL_FIELDS
from systems.risk import update_risk

_F = {name: i for i, name in enumerate(FILL_FIELDS)}
_B = {name: i for i, name in enumerate(BOOK_FIELDS)}


def measure_market(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[WorldState, Frame]:
    """Update MarketState from ``frame.fills`` and ``frame.book``; advance the tick.

    The last price of a symbol is the price of its last fill in the tick (fills are in
    the order they happened), unchanged when it did not trade; with the tick's highest
    and lowest fill prices it makes the tick's bar (a tick without trades is a flat bar
    at the last price).
    """
    del params, key
    s = static.n_symbols
    f, book = frame.fills, frame.book
    qty, symbol = f[_F["qty"]], f[_F["symbol"]]
    traded = qty > 0
    volume = jax.ops.segment_sum(qty, symbol, num_segments=s)
    order = jnp.where(traded, jnp.arange(qty.shape[0]), -1)
    last_idx = jax.ops.segment_max(order, symbol, num_segments=s)
    price = f[_F["price"]]
    last = jnp.where(last_idx >= 0, price[jnp.maximum(last_idx, 0)], state.market.last)
    high = jax.ops.segment_max(jnp.where(traded, price, -1), symbol, num_segments=s)
    low = jax.ops.segment_min(jnp.where(traded, price, jnp.iinfo(jnp.int64).max), symbol, num_segments=s)
    did_trade = volume > 0
    market = state.market.replace(
        bid=book[_B["bid_price"]],
        ask=book[_B["ask_price"]],
        bid_qty=book[_B["bid_qty"]],
        ask_qty=book[_B["ask_qty"]],
        last=last,
        high=jnp.where(did_trade, high, last),
        low=jnp.where(did_trade, low, last),
        volume=volume,
    )
    return state.replace(market=market, tick=state.tick + 1), frame


def twice_marks(state: WorldState) -> jax.Array:
    """Twice the mark price per symbol, exactly: bid + ask when both sides quote, else twice
    the last trade. i64[S] units."""
    m = state.market
    both = (m.bid > 0) & (m.ask > 0)
    return jnp.where(both, m.bid + m.ask, 2 * m.last)


def marks(state: WorldState) -> jax.Array:
    """Mark price per symbol: mid when both sides quote, else the last trade. f64[S] units."""
    return twice_marks(state) / 2.0


def equity(state: WorldState) -> jax.Array:
    """Mark-to-market equity per agent: cash + positions at marks. f64[N] units.

    Summed exactly in integers at twice the marks (a mid may end in half a unit), then
    rounded once to f64: ``(2 * cash + sum(position * 2 * mark)) / 2``. Exact as long as
    each agent's doubled holdings fit in i64 units (a position worth up to about 4.6e14 in
    currency), and cheaper than a float product, which converts the whole position matrix
    first."""
    twice = twice_marks(state)
    return (2 * state.wallet.cash + (state.wallet.position * twice[None, :]).sum(axis=1)) / 2.0


def measure_equity(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[WorldState, Frame]:
    """Mark every agent to market once: feed the risk statistics and fill
    ``frame.marks`` f64[S], the marks used, and ``frame.equity_by_kind`` f64[K], the
    total equity of each kind's agents. Writes."""
    del params, key
    eq = equity(state)
    frame = frame.replace(
        marks=marks(state),  # equity() computes the same marks; XLA keeps one
        equity_by_kind=jnp.stack([eq[k.start : k.stop].sum() for k in static.kinds]),
    )
    return state.replace(risk=update_risk(static.risk, state.risk, eq, state.market.last)), frame
