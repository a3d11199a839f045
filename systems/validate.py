"""validate: pre-trade checks -> accept mask and reason codes.

Per agent and symbol, counting the tick's orders as if all of them filled, on top of the
agent's resting orders (a MODIFY counts in full on top of the order it replaces), so no
interleaving of the tick's orders with fills can break a limit:

* buys: their price x qty plus what the resting buy reserves must fit in the agent's cash
  (``INSUFFICIENT_CASH``), and the position they would make must not exceed the symbol's
  shares outstanding (``POSITION_LIMIT``);
* sells beyond the position are short sales: refused when short selling is off
  (``INSUFFICIENT_SHARES``), when the short would exceed the agent's ``max_short``
  (``SHORT_LIMIT``), or when the symbol's borrow pool cannot cover the extra borrow
  (``NO_BORROW``). The pool's free capacity is its size minus every claim on it (shorts
  held, and resting short sales, see ``settle``); within a tick, claims are granted in
  batch order, and once a symbol's claims overflow its pool every later claim of that tick
  on the symbol is refused.

A failing agent's orders on that side and symbol are all refused. A row may only trade
for the agent that owns it (``NOT_OWNER``). Format checks (size, price, tick grid, symbol,
order ownership) are the engine's.
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
    ``rows_per_agent`` adjacent rows), so per-agent sums are reshapes, not scatters, and
    an agent's wallet and slots are slices broadcast over its rows.
    """
    del key
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
    qty = jnp.maximum(o.qty, 0)
    notional = jnp.where(buy, jnp.maximum(price, 0) * qty, 0)
    buy_qty = jnp.where(buy, qty, 0)
    sell_qty = jnp.where(sell, qty, 0)

    slots, wallet = state.slots, state.wallet
    buy_live = slots.id[:, Side.BUY] != NO_ORDER
    reserved_cash = jnp.where(buy_live, slots.price[:, Side.BUY] * slots.remaining[:, Side.BUY], 0)
    resting_buy = jnp.where(buy_live, slots.remaining[:, Side.BUY], 0)
    resting_sell = jnp.where(slots.id[:, Side.SELL] != NO_ORDER, slots.remaining[:, Side.SELL], 0)

    # Per kind block [count, rows_per_agent].
    cash_ok, long_ok, short, demand, blocks = [], [], [], [], []
    for k in static.kinds:
        shape = (k.count, k.rows_per_agent)
        sl = slice(k.batch_start, k.batch_start + k.batch_rows)
        a = slice(k.start, k.stop)
        need_cash = notional[sl].reshape(shape).sum(axis=1, keepdims=True)
        ok = need_cash + reserved_cash[a, None] <= wallet.cash[a, None]
        cash_ok.append(jnp.broadcast_to(ok, shape).reshape(-1))

        sym = symbol[sl].reshape(shape)
        same = sym[:, :, None] == sym[:, None, :]  # rows of one agent on one symbol
        held = jnp.take_along_axis(wallet.position[a], sym, axis=1)
        on = lambda side: slots.symbol[a, side, None] == sym  # noqa: E731  resting order on this symbol
        buying = (same * buy_qty[sl].reshape(shape)[:, None, :]).sum(-1)
        long_after = held + jnp.where(on(Side.BUY), resting_buy[a, None], 0) + buying
        long_ok.append((long_after <= params.outstanding[sym]).reshape(-1))

        selling = (same * sell_qty[sl].reshape(shape)[:, None, :]).sum(-1)
        resting = jnp.where(on(Side.SELL), resting_sell[a, None], 0)
        short_after = selling + resting - held  # shares short if every sale filled
        claim_before = jnp.maximum(resting - held, 0)
        short.append(jnp.stack([short_after, jnp.broadcast_to(params.max_short[a, None], shape)]).reshape(2, -1))
        # The extra borrow, counted on the agent's first selling row of each symbol.
        sell_rows = sell[sl].reshape(shape)
        earlier = jnp.tril(jnp.ones(shape[1:] * 2, bool), -1)  # [r, r]: row j before row i
        first = sell_rows & ~(same & sell_rows[:, None, :] & earlier[None]).any(-1)
        demand.append(jnp.where(first, jnp.maximum(short_after, 0) - claim_before, 0).reshape(-1))
        blocks.append((sl, shape, same & sell_rows[:, None, :]))
    cash_ok = jnp.concatenate(cash_ok)
    long_ok = jnp.concatenate(long_ok)
    short_after, max_short = jnp.concatenate(short, axis=1)
    demand = jnp.maximum(jnp.concatenate(demand), 0)

    short_sale = short_after > 0
    within_limit = short_after <= max_short
    asks = sell & short_sale & within_limit & (demand > 0)
    free = params.pool - state.lender.claimed  # [S]
    refused = asks & ~_grant_in_order(jnp.where(asks, demand, 0), symbol, free, s)
    # Every selling row of an agent and symbol shares the verdict of the one that asked.
    no_borrow = jnp.concatenate(
        [(selling_same & refused[sl].reshape(shape)[:, None, :]).any(-1).reshape(-1)
         for sl, shape, selling_same in blocks]
    )

    reason = jnp.select(
        [
            o.valid & (o.agent != owner),
            buy & ~cash_ok,
            buy & ~long_ok,
            sell & short_sale & (not static.short_selling),
            sell & short_sale & ~within_limit,
            sell & no_borrow,
        ],
        [
            Reason.NOT_OWNER,
            Reason.INSUFFICIENT_CASH,
            Reason.POSITION_LIMIT,
            Reason.INSUFFICIENT_SHARES,
            Reason.SHORT_LIMIT,
            Reason.NO_BORROW,
        ],
        0,
    ).astype(jnp.int8)
    frame["orders"] = o.replace(valid=o.valid & (reason == 0))
    frame["reject_reason"] = reason
    frame["rejects"] = jnp.bincount(reason, length=N_REASONS).at[0].set(0)
    return state, frame


def _grant_in_order(demand: jax.Array, symbol: jax.Array, free: jax.Array, n_symbols: int) -> jax.Array:
    """Which rows' borrow ``demand`` i64[B] fits in ``free`` i64[S], granted in row order
    per symbol. bool[B]; rows without demand get True.

    The common case (every symbol's total demand fits) needs one segment sum; only a tick
    where some pool overflows pays for the per-symbol running sum.
    """
    total = jax.ops.segment_sum(demand, symbol, num_segments=n_symbols)

    def in_order(_):
        onehot = symbol[:, None] == jnp.arange(n_symbols)[None, :]
        running = jnp.cumsum(jnp.where(onehot, demand[:, None], 0), axis=0)
        return jnp.take_along_axis(running, symbol[:, None], axis=1)[:, 0] <= free[symbol]

    fits = jax.lax.cond(
        (total <= free).all(), lambda _: jnp.ones(demand.shape, bool), in_order, None
    )
    return fits | (demand == 0)
