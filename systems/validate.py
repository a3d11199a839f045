"""validate: pre-trade checks of cash and shares -> accept mask and reason codes.

An agent's buy orders of the tick (price x qty each) plus what its resting buy order
still reserves must fit in its cash; its sell orders of the tick plus its resting sell
order must fit in its position of that symbol (no short selling yet). A MODIFY counts in
full on top of the order it replaces, so no interleaving of the tick's orders with
fills can take cash or shares below zero. A failing agent's orders on that side are all
rejected. An agent may only send orders from its own rows. Format checks (size, price,
tick grid, symbol, order ownership) are the engine's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from components.agents import NO_ORDER, order_side
from components.orders import OrderType, Reason, Side
from components.world import WorldParams, WorldState, WorldStatic

N_REASONS = len(Reason)


def validate_orders(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: dict, key: jax.Array
) -> tuple[WorldState, dict]:
    """Clears ``valid`` of refused rows of ``frame["orders"]``.

    Adds ``frame["reject_reason"]`` i8[B] (Reason, 0 = passed) and ``frame["rejects"]``
    i64[len(Reason)], the count of refused rows per reason. Reads only.

    Batch rows belong to agents by the static layout (each kind's agents write
    ``rows_per_agent`` adjacent rows), so per-agent sums are reshapes, not scatters; a row
    whose ``agent`` is not the row's owner is refused with ``Reason.NOT_OWNER``.
    """
    del params, key
    o = frame["orders"]
    s = static.n_symbols
    owner = np.concatenate(
        [np.repeat(np.arange(k.start, k.stop), k.rows_per_agent) for k in static.kinds]
    )
    symbol = jnp.clip(o.symbol, 0, s - 1)
    places = o.valid & (o.kind != OrderType.CANCEL)
    side = jnp.where(o.kind == OrderType.MODIFY, order_side(o.id), o.side)  # a modify keeps its side
    buy = places & (side == Side.BUY)
    sell = places & (side == Side.SELL)

    # MARKET buys have no price: reserve at the best ask (or the reference).
    view = frame["view"]
    market_price = jnp.where(view.ask > 0, view.ask, jnp.ceil(view.ref).astype(jnp.int64))
    price = jnp.where(o.kind == OrderType.MARKET, market_price[symbol], o.price)
    notional = jnp.where(buy, jnp.maximum(price, 0) * jnp.maximum(o.qty, 0), 0)
    sell_qty = jnp.where(sell, jnp.maximum(o.qty, 0), 0)

    slots, wallet = state.slots, state.wallet
    buy_live = slots.id[:, Side.BUY] != NO_ORDER
    reserved_cash = jnp.where(buy_live, slots.price[:, Side.BUY] * slots.remaining[:, Side.BUY], 0)
    sell_live = slots.id[:, Side.SELL] != NO_ORDER
    reserved_sell = jnp.where(sell_live, slots.remaining[:, Side.SELL], 0)

    # Per kind block [count, rows_per_agent]: each agent's rows are adjacent, so its sums
    # are row sums and its wallet and slots are a slice, broadcast over its rows.
    cash_ok, shares_ok = [], []
    for k in static.kinds:
        shape = (k.count, k.rows_per_agent)
        sl = slice(k.batch_start, k.batch_start + k.batch_rows)
        agents = slice(k.start, k.stop)
        need_cash = notional[sl].reshape(shape).sum(axis=1, keepdims=True)
        ok = need_cash + reserved_cash[agents, None] <= wallet.cash[agents, None]
        cash_ok.append(jnp.broadcast_to(ok, shape).reshape(-1))
        sym = symbol[sl].reshape(shape)
        same = sym[:, :, None] == sym[:, None, :]  # rows of one agent on one symbol
        need = (same * sell_qty[sl].reshape(shape)[:, None, :]).sum(-1)
        resting = jnp.where(slots.symbol[agents, Side.SELL, None] == sym, reserved_sell[agents, None], 0)
        held = jnp.take_along_axis(wallet.position[agents], sym, axis=1)
        shares_ok.append((need + resting <= held).reshape(-1))
    cash_ok = jnp.concatenate(cash_ok)
    shares_ok = jnp.concatenate(shares_ok)

    reason = jnp.where(
        o.valid & (o.agent != owner),
        Reason.NOT_OWNER,
        jnp.where(
            buy & ~cash_ok,
            Reason.INSUFFICIENT_CASH,
            jnp.where(sell & ~shares_ok, Reason.INSUFFICIENT_SHARES, 0),
        ),
    ).astype(jnp.int8)
    frame["orders"] = o.replace(valid=o.valid & (reason == 0))
    frame["reject_reason"] = reason
    frame["rejects"] = jnp.bincount(reason, length=N_REASONS).at[0].set(0)
    return state, frame
