"""Device matching: one symbol's limit order book as fixed-capacity JAX arrays, an order
processed by branch-free vector arithmetic, a batch by ``lax.scan``, books by ``vmap``.

The semantics are the exact engine's (:mod:`systems.matching.exact` defines them; the
differential tests in ``tests/systems/test_device_book.py`` compare fill for fill), with
one addition: a book side holds at most ``capacity`` orders, and an order that could rest
on a full side is rejected with ``Reason.BOOK_FULL`` before it touches anything (never a
silent drop). Everything else is the contract of :mod:`components.orders`.

Layout (:class:`Book`). Each field is ``[2, capacity]``: row 0 the bids, row 1 the asks,
each row in priority order (best price first, earlier arrival first within a price), live
orders first and empty slots (``qty == 0``) after them. Nothing is searched with a loop
(``../shared/DEVICE.md``): with the eligible makers a prefix of the opposite row,

* each maker's fill is ``clip(q - before, 0, qty)`` with ``before`` the cumulative
  quantity ahead of it;
* the makers the order used up (filled in full, or removed by self-trade prevention
  ``CANCEL_MAKER``) are a prefix, dropped by one shifted read;
* a remainder that rests goes behind every live order with a key at most its own (the
  key is the price on the ask row and minus the price on the bid row, so both rows sort
  ascending), by one shifted write.

Every kind of order runs the same arithmetic; its kind only switches masks on and off
(a MARKET order is a limit at the far price, an IOC a limit whose remainder is dropped, a
CANCEL removes its target, a MODIFY removes its target and re-enters it unless it keeps
its place), so ``vmap`` over books costs one order's work, not one per kind.

What one order returns (:class:`Step`): its outcome fields (:class:`Outcomes` layout) and
its fills as ``[capacity]`` arrays in priority order (``qty == 0``: no fill), which the
host compacts into a :class:`~components.orders.FillBatch`.

Limits of this module (the multi-symbol engine, ids across symbols and the order updates
are built on it, not here): one symbol per book; ``DUPLICATE_ID`` and ``UNKNOWN_ORDER``
look only at this book.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from components.money import MAX_PRICE, MAX_QTY
from components.orders import OrderType, Reason, Side, Status, STP

_LIMIT, _MARKET, _IOC = int(OrderType.LIMIT), int(OrderType.MARKET), int(OrderType.IOC)
_POST_ONLY, _CANCEL, _MODIFY = int(OrderType.POST_ONLY), int(OrderType.CANCEL), int(OrderType.MODIFY)
EMPTY_KEY = 2**62
"""Sort key of an empty slot: above every price's key, so empty slots sort last."""


@struct.dataclass
class Book:
    """One symbol's book: ``[2, capacity]`` per field (row 0 bids, row 1 asks)."""

    price: jax.Array  # i64 units; 0 in an empty slot
    qty: jax.Array  # i64 shares left; 0 = empty slot
    id: jax.Array  # i64 order id
    agent: jax.Array  # i32 owner

    @property
    def capacity(self) -> int:
        return int(self.qty.shape[-1])


@struct.dataclass
class Order:
    """One order (scalars), the fields of an :class:`~components.orders.OrderBatch` row."""

    valid: jax.Array
    id: jax.Array
    agent: jax.Array
    side: jax.Array
    kind: jax.Array
    price: jax.Array
    qty: jax.Array


@struct.dataclass
class Step:
    """What one order did: the :class:`~components.orders.Outcomes` fields, and its fills
    against the opposite row as it was on arrival (``fill_qty[j] > 0``: the maker in
    priority slot ``j`` traded ``fill_qty[j]`` shares at ``fill_price[j]``)."""

    status: jax.Array
    reason: jax.Array
    filled: jax.Array
    resting: jax.Array
    filled_value: jax.Array
    arrival_bid: jax.Array
    arrival_ask: jax.Array
    arrival_depth: jax.Array
    fill_qty: jax.Array  # i64[capacity]
    fill_price: jax.Array  # i64[capacity]
    maker_id: jax.Array  # i64[capacity]
    maker_agent: jax.Array  # i32[capacity]


def empty_book(capacity: int) -> Book:
    """A book with no orders and ``capacity`` slots per side."""
    if capacity < 1:
        raise ValueError(f"book capacity must be >= 1, got {capacity}")
    z = jnp.zeros((2, capacity), jnp.int64)
    return Book(price=z, qty=z, id=z, agent=jnp.zeros((2, capacity), jnp.int32))


def _key(row, price):
    """Ascending sort key of ``price`` on ``row`` (0 bids, 1 asks)."""
    return jnp.where(row == 0, -price, price)


def _remove_prefix(fields, k):
    """Drop the first ``k`` slots of each ``[capacity]`` array (shift left, zero-fill)."""
    c = fields[0].shape[0]
    src = jnp.arange(c) + k
    ok = src < c
    return [jnp.where(ok, f[jnp.minimum(src, c - 1)], 0) for f in fields]


def _remove_at(fields, p, on):
    """Drop slot ``p`` of each array where ``on`` (shift the slots after it left)."""
    c = fields[0].shape[0]
    j = jnp.arange(c)
    src = jnp.where(on & (j >= p), j + 1, j)
    ok = src < c
    return [jnp.where(ok, f[jnp.minimum(src, c - 1)], 0) for f in fields]


def _insert_at(fields, values, p, on):
    """Write ``values`` at slot ``p`` where ``on``, the slots from ``p`` shifted right
    (the last slot falls off: callers insert only into a row with a free slot)."""
    j = jnp.arange(fields[0].shape[0])
    src = jnp.maximum(j - 1, 0)
    out = []
    for f, v in zip(fields, values):
        shifted = jnp.where(j > p, f[src], f)
        out.append(jnp.where(on, jnp.where(j == p, v, shifted).astype(f.dtype), f))
    return out


def _row(book: Book, r):
    return [book.price[r], book.qty[r], book.id[r], book.agent[r]]


def _set_row(book: Book, r, fields) -> Book:
    price, qty, oid, agent = fields
    return Book(price=book.price.at[r].set(price), qty=book.qty.at[r].set(qty),
                id=book.id.at[r].set(oid), agent=book.agent.at[r].set(agent))


def process_order(book: Book, o: Order, tick_size, stp: int) -> tuple[Book, Step]:
    """Apply one order to ``book`` (``stp``: a static :class:`STP` mode)."""
    i64 = jnp.int64
    price, qty = o.price.astype(i64), o.qty.astype(i64)
    kind, side = o.kind.astype(jnp.int32), o.side.astype(jnp.int32)
    live = book.qty > 0
    best_bid = jnp.where(live[0, 0], book.price[0, 0], 0)
    best_ask = jnp.where(live[1, 0], book.price[1, 0], 0)
    depth = book.qty.sum(axis=1)

    # The checks, first failing wins.
    is_new = (kind == _LIMIT) | (kind == _MARKET) | (kind == _IOC) | (kind == _POST_ONLY)
    targets = (kind == _CANCEL) | (kind == _MODIFY)
    priced = (kind == _LIMIT) | (kind == _IOC) | (kind == _POST_ONLY) | (kind == _MODIFY)
    hit = live & (book.id == o.id)
    found = hit.any()
    t_row = jnp.argmax(hit.any(axis=1)).astype(jnp.int32)  # the target's row and slot
    t_pos = jnp.argmax(hit[t_row]).astype(jnp.int32)
    t_price, t_qty, t_agent = book.price[t_row, t_pos], book.qty[t_row, t_pos], book.agent[t_row, t_pos]
    safe_tick = jnp.maximum(tick_size, 1)
    # the side the order trades from: its own for a new order, its target's for a MODIFY
    own = jnp.where(targets, t_row, side)
    opp = 1 - own
    crosses_opp = live[opp, 0] & jnp.where(own == 0, book.price[opp, 0] <= price, book.price[opp, 0] >= price)
    full = live[own, -1]
    checks = [
        ((kind < 0) | (kind > _MODIFY), Reason.BAD_KIND),
        (is_new & (side != int(Side.BUY)) & (side != int(Side.SELL)), Reason.BAD_SIDE),
        ((kind != _CANCEL) & ((qty <= 0) | (qty > MAX_QTY)), Reason.BAD_QTY),
        (priced & ((price <= 0) | (price > MAX_PRICE)), Reason.BAD_PRICE),
        (priced & (price % safe_tick != 0), Reason.OFF_TICK),
        (is_new & found, Reason.DUPLICATE_ID),
        (targets & ~found, Reason.UNKNOWN_ORDER),
        (targets & found & (t_agent != o.agent), Reason.NOT_OWNER),
        ((kind == _POST_ONLY) & crosses_opp, Reason.WOULD_CROSS),
        (((kind == _LIMIT) | (kind == _POST_ONLY)) & full, Reason.BOOK_FULL),
    ]
    reason = jnp.int32(0)
    for failed, why in reversed(checks):
        reason = jnp.where(failed, int(why), reason)
    ok = o.valid & (reason == 0)
    reason = jnp.where(o.valid, reason, 0)

    # A MODIFY keeps its place (same price, no larger) or leaves the book and re-enters.
    keeps = (kind == _MODIFY) & (price == t_price) & (qty <= t_qty)
    removes = ok & ((kind == _CANCEL) | ((kind == _MODIFY) & ~keeps))
    own_fields = _row(book, own)
    own_fields[1] = jnp.where(ok & keeps & (jnp.arange(book.capacity) == t_pos), qty, own_fields[1])
    own_fields = _remove_at(own_fields, t_pos, removes)

    # Matching: a new order but POST_ONLY, or a MODIFY that re-enters at a new price.
    takes = ok & ((kind == _LIMIT) | (kind == _MARKET) | (kind == _IOC) | ((kind == _MODIFY) & (price != t_price)))
    q = jnp.where(takes, qty, 0)
    m_price, m_qty, m_id, m_agent = _row(book, opp)
    m_live = m_qty > 0
    in_limit = jnp.where(own == 0, m_price <= price, m_price >= price)
    eligible = m_live & ((kind == _MARKET) | in_limit)
    mine = eligible & (m_agent == o.agent)
    if stp == int(STP.CANCEL_TAKER):
        fillable = eligible & (jnp.cumsum(mine) == 0)
    elif stp == int(STP.CANCEL_MAKER):
        fillable = eligible & ~mine
    else:
        fillable = eligible
    fq = jnp.where(fillable, m_qty, 0)
    before = jnp.cumsum(fq) - fq
    take = jnp.clip(q - before, 0, fq)
    filled = take.sum()
    reached = before < q  # the taker still had shares left when it came to this maker
    used = ((take == fq) & (fq > 0)) | ((stp == int(STP.CANCEL_MAKER)) & mine & reached)
    stp_dropped = (stp == int(STP.CANCEL_TAKER)) & (mine & reached).any() & (filled < q)
    opp_fields = _remove_prefix([m_price, m_qty - take, m_id, m_agent], used.sum())

    # The remainder rests (LIMIT, POST_ONLY, MODIFY) behind every key at most its own.
    rem = qty - filled
    rests = ok & ((kind == _LIMIT) | (kind == _POST_ONLY) | ((kind == _MODIFY) & ~keeps)) & (rem > 0) & ~stp_dropped
    o_price, o_qty = own_fields[0], own_fields[1]
    p = ((o_qty > 0) & (_key(own, o_price) <= _key(own, price))).sum()
    own_fields = _insert_at(own_fields, [price, rem, o.id.astype(i64), o.agent.astype(jnp.int32)], p, rests)
    new = _set_row(_set_row(book, own, own_fields), opp, opp_fields)
    book = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, book)

    # The outcome.
    taker = takes | (ok & (kind == _POST_ONLY))
    q_all = jnp.where(kind == _POST_ONLY, qty, q)
    status = jnp.select(
        [~o.valid, ~ok, ~taker, filled == q_all, filled > 0, rests],
        [int(Status.NONE), int(Status.REJECTED), int(Status.ACCEPTED), int(Status.FILLED),
         int(Status.PARTIAL), int(Status.ACCEPTED)], int(Status.CANCELLED))
    dropped = jnp.where(stp_dropped, int(Reason.SELF_TRADE), int(Reason.NO_LIQUIDITY))
    reason = jnp.where(ok & taker & (filled < q_all) & ~rests, dropped, reason)
    resting = jnp.where(ok & rests, rem, jnp.where(ok & keeps, qty, 0))
    z = jnp.int64(0)
    step = Step(
        status=status.astype(jnp.int8), reason=reason.astype(jnp.int8),
        filled=jnp.where(ok, filled, z), resting=resting,
        filled_value=jnp.where(ok, (take * m_price).sum(), z),
        arrival_bid=jnp.where(ok, best_bid, z), arrival_ask=jnp.where(ok, best_ask, z),
        arrival_depth=jnp.where(ok & (kind != _CANCEL), depth[opp], z),
        fill_qty=jnp.where(ok, take, 0), fill_price=m_price, maker_id=m_id, maker_agent=m_agent,
    )
    return book, step


def process_orders(book: Book, orders: Order, tick_size, stp: int) -> tuple[Book, Step]:
    """Apply ``orders`` (each field ``[B]``) in array order: ``lax.scan`` of
    :func:`process_order`; the steps come back stacked ``[B, ...]``."""
    return jax.lax.scan(lambda b, o: process_order(b, o, tick_size, stp), book, orders)
