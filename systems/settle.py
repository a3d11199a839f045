"""settle: fills -> wallets; engine order updates -> each agent's order slots."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from components.agents import NO_ORDER, SLOTS
from components.orders import Side
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

    An order's slot is ``id % (N * SLOTS)`` and each slot holds at most one resting
    order. An update with ``remaining > 0`` is an order resting at the end of the tick:
    it takes its slot (id, price, symbol, remaining). One with ``remaining == 0`` that
    names the slot's current order empties the slot. Empties are applied before sets, so
    a slot whose old order was cancelled while a new one came to rest holds the new one.
    """
    cells = static.n_agents * SLOTS
    sl = state.slots
    u = frame["updates"]
    uid, rem = u[_U["id"]], u[_U["remaining"]]
    real = uid >= 0  # padding rows have id -1
    cell = jnp.where(real, uid % cells, 0)
    current = sl.id.reshape(-1)[cell] == uid
    empty = jnp.where(real & (rem == 0) & current, cell, cells)  # out of range -> dropped
    take = jnp.where(real & (rem > 0), cell, cells)

    def put(field, value, cleared):
        flat = field.reshape(-1).at[empty].set(cleared, mode="drop")
        return flat.at[take].set(value.astype(field.dtype), mode="drop").reshape(field.shape)

    return sl.replace(
        id=put(sl.id, uid, NO_ORDER),
        remaining=put(sl.remaining, rem, 0),
        price=put(sl.price, u[_U["price"]], 0),
        symbol=put(sl.symbol, u[_U["symbol"]], 0),
    )
