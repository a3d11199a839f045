"""admission: pre-trade checks -> accept mask and reason codes.

Per agent and symbol, counting the tick's orders as if all of them filled, on top of the
agent's resting orders (a MODIFY counts in full on top of the order it replaces), so no
interleaving of the tick's orders with fills can break a limit:

* buys: their price x qty (a MARKET buy, which has no limit, at ``MAX_PRICE``) plus what
  the resting buy reserves must fit in the agent's cash (``INSUFFICIENT_CASH``), and the
  position they would make must not exceed the symbol's shares outstanding
  (``POSITION_LIMIT``);
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

No sum can wrap. A row beyond the order bounds of :mod:`components.money` (quantity above
``MAX_QTY``, or a limit price above ``MAX_PRICE``) counts for nothing here, since the
engine refuses it (``BAD_QTY``, ``BAD_PRICE``); so every row's price x qty is at most
``MAX_NOTIONAL`` (10**18), an agent's cash sum saturates at the int64 maximum (an agent
may have a row per symbol) and a saturated sum fits no cash, share sums are at most
(rows + 1) x ``MAX_QTY``, and a position is only ever compared with them, never added to
them.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.agents import NO_ORDER, order_side
from components.frame import Frame
from components.money import INT64_MAX, MAX_PRICE, MAX_QTY, saturating_add, saturating_sum
from components.orders import OrderType, Reason, Side
from components.world import WorldParams, WorldState, WorldStatic
from systems.fusion import materialised

N_REASONS = len(Reason)

def admit_orders(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[WorldState, Frame]:
    """Clears ``valid`` of refused rows of ``frame.orders``.

    Fills ``frame.reject_reason`` i8[B] (Reason, 0 = passed), ``frame.rejects``
    i64[len(Reason)], the count of refused rows per reason, and ``frame.borrow_fits``
    bool[]: every symbol's borrow demand this tick fits in its pool's free capacity, so no
    NO_BORROW refusal was needed. Reads only.

    Batch rows belong to agents by the static layout (each kind's agents write
    ``rows_per_agent`` adjacent rows), so each kind's rows are a block [count, rows]:
    per-agent sums are row sums, and an agent's wallet and slots are slices broadcast
    over its rows. Only the borrow pools couple agents; they are granted in batch order.
    """
    return _admit(static, params, state, frame, assume_fits=False)


def admit_orders_assuming_fits(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[WorldState, Frame]:
    """:func:`admit_orders`'s fast path: the same frame where ``frame.borrow_fits`` comes
    out true, and a wrong one (no NO_BORROW refusals) where it comes out false.

    It skips the in-order grant of borrow claims and its ``lax.cond``, which costs about
    5 ms of the read phase's 27 at a million agents whether or not it is taken (the
    conditional keeps XLA from fusing across it). Only a caller that checks
    :func:`borrow_fitted` and runs :func:`admit_orders` instead when it is false may use
    it: the schedule's admission stage names it as its fast variant (``Stage.fast``).
    """
    return _admit(static, params, state, frame, assume_fits=True)


def borrow_fitted(frame: Frame) -> jax.Array:
    """Whether :func:`admit_orders_assuming_fits` gave the exact result. bool[]"""
    return frame.borrow_fits


def _admit(static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, assume_fits: bool):
    # Materialise the batch first. Without the barrier XLA fuses each kind's order
    # arithmetic into the many fusions below that read it and recomputes it at every use:
    # the read phase took 2.95 ms at seed_100k and 21.4 ms at a million agents without
    # it, 2.35 and 15.6 with it.
    o = jax.lax.optimization_barrier(frame.orders)
    frame = frame.replace(orders=o)
    s = static.n_symbols
    blocks = [_check_block(static, params, state, frame, k) for k in _runs(static)]
    # The background pool's rows (after every kind's) have no wallet to check: the pool
    # is accounted in aggregate (systems.background).
    n_pool = static.batch_rows - static.agent_rows
    total = sum(b.total for b in blocks)  # [S] extra borrow the tick asks for
    free = params.pool - state.lender.claimed  # [S]

    def in_order():
        # Rare: some pool overflows. Recompute the claims (cheaper than keeping them for
        # every tick) and grant them in batch order.
        demand = jnp.concatenate(
            [_check_block(static, params, state, frame, k).demand.reshape(-1) for k in _runs(static)]
            + [jnp.zeros(n_pool, jnp.int64)]
        )
        symbol = jnp.clip(o.symbol, 0, s - 1)
        return (demand > 0) & ~_granted_in_order(demand, symbol, free, s)

    fits = (total <= free).all()
    pool_rows = jnp.zeros(n_pool, jnp.int8)  # the pool's rows pass (no wallet to check)
    if assume_fits:
        # The caller runs admit_orders instead when ``fits`` comes back false.
        parts = [b.reason.reshape(-1) for b in blocks]
    else:
        refused = jax.lax.cond(fits, lambda: jnp.zeros(o.valid.shape, bool), in_order)
        parts = []
        for k, b in zip(_runs(static), blocks):
            mine = refused[k.batch_start : k.batch_start + k.batch_rows].reshape(b.reason.shape)
            # Every selling row of the agent on that symbol shares the refusal.
            hit = b.sell & (b.selling_same & mine[:, None, :]).any(-1)
            parts.append(jnp.where((b.reason == 0) & hit, Reason.NO_BORROW, b.reason).astype(jnp.int8).reshape(-1))
    reason = jnp.concatenate(parts + [pool_rows])
    return state, frame.replace(
        orders=o.replace(valid=o.valid & (reason == 0)),
        reject_reason=reason,
        rejects=jnp.bincount(reason, length=N_REASONS).at[0].set(0),
        borrow_fits=fits,
    )


def _runs(static: WorldStatic) -> tuple:
    """The kinds merged into runs of neighbours with the same rows per agent (the world
    lays kinds out sorted by rows per agent): each run is checked as one block, so the
    check's cost does not grow with the number of kinds."""
    runs: list = []
    for k in static.kinds:
        last = runs[-1] if runs else None
        if last is not None and last.rows_per_agent == k.rows_per_agent and last.stop == k.start \
                and last.batch_start + last.batch_rows == k.batch_start:
            runs[-1] = dataclasses.replace(last, name=f"{last.name}+{k.name}", count=last.count + k.count)
        else:
            runs.append(k)
    return tuple(runs)


@struct.dataclass
class _Block:
    """One kind's verdicts, [count, rows_per_agent] (``selling_same`` [count, r, r])."""

    reason: jax.Array  # i8 every reason but NO_BORROW
    sell: jax.Array  # bool: the row sells
    selling_same: jax.Array  # bool: row j sells on row i's symbol
    demand: jax.Array  # i64 extra borrow the row asks for (on an agent's first sale per symbol)
    symbol: jax.Array  # i32 the row's symbol (clipped to a valid index)
    total: jax.Array  # i64[S] the block's demand per symbol


def _check_block(static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, k) -> _Block:
    """Every check but the pools' running sum, for kind ``k``'s rows."""
    s = static.n_symbols
    slots, wallet = state.slots, state.wallet
    shape = (k.count, k.rows_per_agent)
    rows = slice(k.batch_start, k.batch_start + k.batch_rows)
    a = slice(k.start, k.stop)
    b = jax.tree.map(lambda x: x[rows].reshape(shape), frame.orders)
    sym = jnp.clip(b.symbol, 0, s - 1)
    market = b.kind == OrderType.MARKET
    # A row beyond the order bounds counts for nothing here: the engine refuses it
    # (BAD_QTY, BAD_PRICE) whatever else it is. So every quantity below is at most
    # MAX_QTY and every price at most MAX_PRICE, and their products at most MAX_NOTIONAL.
    priced = (b.kind != OrderType.CANCEL) & ~market
    bounded = (b.qty <= MAX_QTY) & (~priced | (b.price <= MAX_PRICE))
    places = b.valid & (b.kind != OrderType.CANCEL) & bounded
    side = jnp.where(b.kind == OrderType.MODIFY, order_side(b.id), b.side)  # a modify keeps its side
    buy = places & (side == Side.BUY)
    sell = places & (side == Side.SELL)
    qty = jnp.maximum(b.qty, 0)
    same = sym[:, :, None] == sym[:, None, :]  # [c, r, r] rows of one agent on one symbol

    # Cash: every buy of the agent plus its resting buy. A MARKET buy has no limit: it may
    # walk the book up to the highest price there can be, so it reserves at MAX_PRICE.
    price = jnp.where(market, MAX_PRICE, jnp.maximum(b.price, 0))
    # An agent's rows may be many (one per symbol), each up to MAX_NOTIONAL: the sum
    # saturates at the int64 maximum instead of wrapping.
    notional = saturating_sum(jnp.where(buy, price * qty, 0), axis=1)[:, None]
    # The sums over an agent's rows are materialised once per block: fused into their
    # readers (the reason of every row, the borrow demand), each row recomputed its agent's
    # whole sum, r times the work for r rows an agent (tick at seed_100k 0.28 ms less, at
    # a million agents 0.44 ms, in A/B runs).
    shared = materialised if k.rows_per_agent >= 2 else (lambda x: x)
    notional = shared(notional)
    buy_live = slots.id[a, Side.BUY] != NO_ORDER
    # A resting order is within the bounds (the engine refused any other): <= MAX_NOTIONAL.
    reserved = jnp.where(buy_live, slots.price[a, Side.BUY] * slots.remaining[a, Side.BUY], 0)
    spend = saturating_add(notional, reserved[:, None])
    cash_ok = (spend <= wallet.cash[a, None]) & (spend < INT64_MAX)  # a saturated sum never fits

    # Long limit: the position if every buy filled, within the shares outstanding. The
    # shares asked for are at most (rows + 1) * MAX_QTY; held (any int64) is compared,
    # never added, and outstanding >= 1, so nothing here can wrap.
    held = jnp.take_along_axis(wallet.position[a], sym, axis=1)
    on = lambda side: slots.symbol[a, side, None] == sym  # noqa: E731  resting order on this symbol
    resting_buy = jnp.where(buy_live[:, None] & on(Side.BUY), slots.remaining[a, Side.BUY, None], 0)
    buying = shared((same * jnp.where(buy, qty, 0)[:, None, :]).sum(-1))
    long_ok = held <= params.outstanding[sym] - (resting_buy + buying)

    # Short sales: the short if every sale filled, its limit, and the extra borrow. As
    # above, the shares offered are small and held is only compared with them.
    sell_live = slots.id[a, Side.SELL, None] != NO_ORDER
    resting = jnp.where(sell_live & on(Side.SELL), slots.remaining[a, Side.SELL, None], 0)
    selling = shared((same * jnp.where(sell, qty, 0)[:, None, :]).sum(-1))
    offered = selling + resting
    short_after = offered - held  # read only within the limit (offered - max_short <= held): no wrap
    going_short = sell & (offered > held)
    within = offered - params.max_short[a, None] <= held
    # The extra borrow, counted once per agent and symbol: on its first selling row.
    earlier = np.tril(np.ones(shape[1:] * 2, bool), -1)  # [r, r]: row j before row i
    selling_same = same & sell[:, None, :]
    first = sell & ~(selling_same & earlier[None]).any(-1)
    claim_before = jnp.maximum(resting - held, 0)
    demand = jnp.where(first & going_short & within, jnp.maximum(short_after - claim_before, 0), 0)
    # Per-symbol totals by scatter-add: a one-hot sum fuses the whole demand computation
    # into an [count, rows, S] loop and costs S times the work (2.5 ms a tick at 1M agents).
    total = jnp.zeros(s, demand.dtype).at[sym.reshape(-1)].add(demand.reshape(-1))

    reason = jnp.where(
        b.valid & (b.agent != (k.start + jnp.arange(k.count))[:, None]),
        Reason.NOT_OWNER,
        jnp.where(
            buy & ~cash_ok,
            Reason.INSUFFICIENT_CASH,
            jnp.where(
                buy & ~long_ok,
                Reason.POSITION_LIMIT,
                jnp.where(
                    going_short & (not static.short_selling),
                    Reason.INSUFFICIENT_SHARES,
                    jnp.where(going_short & ~within, Reason.SHORT_LIMIT, 0),
                ),
            ),
        ),
    ).astype(jnp.int8)
    return _Block(reason, sell, selling_same, demand, sym, total)


def _granted_in_order(demand: jax.Array, symbol: jax.Array, free: jax.Array, n_symbols: int) -> jax.Array:
    """Whether each row's borrow ``demand`` i64[B] still fits in ``free`` i64[S] when
    rows are served in batch order per symbol (a running sum). bool[B]"""
    onehot = symbol[:, None] == jnp.arange(n_symbols)[None, :]
    running = jnp.cumsum(jnp.where(onehot, demand[:, None], 0), axis=0)
    return jnp.take_along_axis(running, symbol[:, None], axis=1)[:, 0] <= free[symbol]
