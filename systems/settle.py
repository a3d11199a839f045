"""settle: fills -> wallets; engine order updates -> each agent's order slots."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from components.agents import NO_ORDER, SLOTS
from components.orders import OrderType, Side
from components.world import WorldParams, WorldState, WorldStatic
from systems.match import FILL_FIELDS, UPDATE_FIELDS

_F = {name: i for i, name in enumerate(FILL_FIELDS)}
_U = {name: i for i, name in enumerate(UPDATE_FIELDS)}


def settle_fills(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: dict, key: jax.Array
) -> tuple[WorldState, dict]:
    """Move cash and shares for every fill; refresh the order slots. Writes state.

    ``frame["fills"]`` i64[6, F] and ``frame["updates"]`` i64[2, U] come from the match
    stage; padding fills have qty 0 and padding updates id -1. Cash moves by exactly
    ``price * qty`` from buyer to seller, so totals are conserved.
    """
    del params, key
    f = frame["fills"]
    taker, maker = f[_F["taker_agent"]], f[_F["maker_agent"]]
    symbol, qty = f[_F["symbol"]], f[_F["qty"]]
    taker_buys = f[_F["side"]] == Side.BUY
    buyer = jnp.where(taker_buys, taker, maker)
    seller = jnp.where(taker_buys, maker, taker)
    notional = f[_F["price"]] * qty
    cash = state.wallet.cash.at[buyer].add(-notional).at[seller].add(notional)
    position = state.wallet.position.at[buyer, symbol].add(qty).at[seller, symbol].add(-qty)

    slots = _apply_updates(static, state, frame)
    return state.replace(wallet=state.wallet.replace(cash=cash, position=position), slots=slots), frame


def _apply_updates(static: WorldStatic, state: WorldState, frame: dict):
    """Slot table after the engine's per-order updates.

    An order's slot is ``id % (N * SLOTS)``. An update that names the slot's current order
    or the order placed/modified in that slot this tick sets (id, price, symbol,
    remaining); one with remaining 0 that names the current order empties the slot.
    Empties are applied before sets, so a slot whose old order was cancelled and whose
    new order rests ends up holding the new one.
    """
    cells = static.n_agents * SLOTS
    sl = state.slots
    cur_id, cur_price = sl.id.reshape(-1), sl.price.reshape(-1)
    cur_sym, cur_rem = sl.symbol.reshape(-1), sl.remaining.reshape(-1)

    o = frame["orders"]
    placed = o.valid & (o.kind != OrderType.CANCEL)
    pcell = jnp.where(placed, o.id % cells, cells)  # out of range -> dropped
    sub_id = jnp.full(cells, NO_ORDER, jnp.int64).at[pcell].set(o.id, mode="drop")
    sub_price = jnp.zeros(cells, jnp.int64).at[pcell].set(o.price, mode="drop")
    sub_sym = jnp.zeros(cells, jnp.int32).at[pcell].set(o.symbol, mode="drop")

    u = frame["updates"]
    uid, rem = u[_U["id"]], u[_U["remaining"]]
    real = uid >= 0
    cell = jnp.where(real, uid % cells, 0)
    is_cur = real & (cur_id[cell] == uid)
    is_sub = real & (sub_id[cell] == uid)
    empty = jnp.where(is_cur & (rem == 0), cell, cells)
    setc = jnp.where((is_cur | is_sub) & (rem > 0), cell, cells)
    price = jnp.where(is_sub, sub_price[cell], cur_price[cell])
    sym = jnp.where(is_sub, sub_sym[cell], cur_sym[cell])

    new_id = cur_id.at[empty].set(NO_ORDER, mode="drop").at[setc].set(uid, mode="drop")
    new_rem = cur_rem.at[empty].set(0, mode="drop").at[setc].set(rem, mode="drop")
    new_price = cur_price.at[setc].set(price, mode="drop")
    new_sym = cur_sym.at[setc].set(sym, mode="drop")
    shape = sl.id.shape
    return sl.replace(
        id=new_id.reshape(shape),
        remaining=new_rem.reshape(shape),
        price=new_price.reshape(shape),
        symbol=new_sym.reshape(shape),
    )
