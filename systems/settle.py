"""settle: fills -> wallets; engine order updates -> each agent's order slots; the borrow
ledger and its fees."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from components.agents import NO_ORDER, SLOTS
from components.background import BACKGROUND_ID
from components.frame import Frame
from components.money import apply_rate
from components.orders import Side
from components.world import WorldParams, WorldState, WorldStatic
from systems.match import FILL_FIELDS, UPDATE_FIELDS

_F = {name: i for i, name in enumerate(FILL_FIELDS)}
_U = {name: i for i, name in enumerate(UPDATE_FIELDS)}


def settle_fills(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[WorldState, Frame]:
    """Move cash and shares for every fill; refresh the order slots. Writes state.

    ``frame.fills`` i64[6, F] and ``frame.updates`` i64[4, U] come from the match
    stage; padding fills have qty 0 and padding updates id -1. Cash moves by exactly
    ``price * qty`` from buyer to seller, so totals are conserved.
    """
    del key
    f = frame.fills
    taker, maker = f[_F["taker_agent"]], f[_F["maker_agent"]]
    symbol, qty = f[_F["symbol"]], f[_F["qty"]]
    taker_buys = f[_F["side"]] == Side.BUY
    buyer = jnp.where(taker_buys, taker, maker)
    seller = jnp.where(taker_buys, maker, taker)
    notional = f[_F["price"]] * qty
    # The background pool's virtual owners lie beyond the agents' rows: their side of a
    # fill is dropped here and accounted in aggregate (systems.background).
    cash = state.wallet.cash.at[buyer].add(-notional, mode="drop").at[seller].add(notional, mode="drop")
    position = (
        state.wallet.position.at[buyer, symbol].add(qty, mode="drop").at[seller, symbol].add(-qty, mode="drop")
    )

    slots = _apply_updates(static, state, frame)
    borrowed, claimed = borrow_claims(static, position, slots)
    # Borrow fees for the coming tick, on the borrowed shares at the last close; an agent
    # pays what its free cash allows (cash beyond what its resting buy reserves, so that
    # the buy can still fill without taking cash below zero) and the lender records the
    # rest as unpaid.
    due = apply_rate(borrowed * state.market.last[None, :], params.borrow_rate).sum(axis=1)
    live_buy = slots.id[:, Side.BUY] != NO_ORDER
    reserved = jnp.where(live_buy, slots.price[:, Side.BUY] * slots.remaining[:, Side.BUY], 0)
    paid = jnp.minimum(due, jnp.maximum(cash - reserved, 0))
    lender = state.lender.replace(
        lent=borrowed.sum(axis=0),
        claimed=claimed,
        cash=state.lender.cash + paid.sum(),
        unpaid=state.lender.unpaid + (due - paid).sum(),
    )
    wallet = state.wallet.replace(
        cash=cash - paid, position=position, borrowed=borrowed, fees=state.wallet.fees + paid
    )
    return state.replace(wallet=wallet, slots=slots, lender=lender), frame


def borrow_claims(static: WorldStatic, position: jax.Array, slots) -> tuple[jax.Array, jax.Array]:
    """The borrow ledger implied by positions and resting orders.

    An agent's claim on a symbol's pool is the short it would hold if its resting sell
    order filled: ``max(resting sell - position, 0)``. Returns ``borrowed`` i64[N, S] (the
    claim with ``static.locate``, else only the short held, ``max(-position, 0)``) and the
    pool's total claims i64[S]. Validation keeps the claims within the pool, so filled
    short sales always find their borrow.
    """
    s = position.shape[1]
    short = jnp.maximum(-position, 0)
    live = slots.id[:, Side.SELL] != NO_ORDER
    sym = slots.symbol[:, Side.SELL]
    pos = jnp.take_along_axis(position, sym[:, None], axis=1)[:, 0]
    resting = jnp.where(live, slots.remaining[:, Side.SELL], 0)
    extra = jnp.maximum(resting - pos, 0) - jnp.maximum(-pos, 0)  # claim beyond the short
    # One-hot sums rather than scatters: elementwise work fuses, a scatter runs serially.
    extra = jnp.where(sym[:, None] == jnp.arange(s)[None, :], extra[:, None], 0)  # [N, S]
    claimed = (short + extra).sum(axis=0)
    if static.locate:
        short = short + extra
    return short, claimed


def _apply_updates(static: WorldStatic, state: WorldState, frame: Frame):
    """Slot table after the engine's per-order updates.

    An order's slot is ``id % (N * SLOTS)`` and each slot holds at most one resting
    order. An update with ``remaining > 0`` is an order resting at the end of the tick:
    it takes its slot (id, price, symbol, remaining). One with ``remaining == 0`` that
    names the slot's current order empties the slot. Empties are applied before sets, so
    a slot whose old order was cancelled while a new one came to rest holds the new one.
    """
    cells = static.n_agents * SLOTS
    sl = state.slots
    u = frame.updates
    uid, rem = u[_U["id"]], u[_U["remaining"]]
    real = (uid >= 0) & (uid < BACKGROUND_ID)  # padding rows have id -1; the pool has its own
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
