"""Device matching: one symbol's limit order book as fixed-capacity JAX arrays, an order
processed by branch-free vector arithmetic, a batch by ``lax.scan``, books by ``vmap``.

The semantics are the exact engine's (:mod:`systems.matching.exact` defines them; the
differential tests in ``tests/systems/matching/test_device_book.py`` compare fill for fill), with
one addition: a book side holds at most ``capacity`` orders, and an order that could rest
on a full side is rejected with ``Reason.BOOK_FULL`` before it touches anything (never a
silent drop). Everything else is the contract of :mod:`components.orders`.

Layout (:class:`components.book.Book`). Each field is ``[2, capacity]``: row 0 the bids,
row 1 the asks, each row in priority order (best price first, earlier arrival first
within a price), live orders first and empty slots (``qty == 0``) after them. Nothing is searched with a loop
(``../shared/DEVICE.md``): with the eligible makers a prefix of the opposite row,

* each maker's fill is ``clip(q - before, 0, qty)`` with ``before`` the cumulative
  quantity ahead of it;
* the makers the order used up (filled in full, or removed by self-trade prevention
  ``CANCEL_MAKER``) are a prefix, dropped by shifting the row (:func:`_remove_prefix`);
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

A market is ``[S, 2, capacity]`` books: :func:`process_market` takes a batch in order
through one scan with the symbol and the id checked market-wide; :func:`process_symbols`
runs each symbol's rows through its own book, all symbols at once, which is the same
whenever no id is used on two symbols. :class:`DeviceEngine` is the host engine
(``engine=device``) over both.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.book import Book, empty_book
from components.money import MAX_PRICE, MAX_QTY
from components.orders import (
    STP,
    Depth,
    FillBatch,
    MatchResult,
    OrderBatch,
    OrderType,
    OrderUpdates,
    Outcomes,
    Reason,
    Side,
    Status,
    TopOfBook,
    check_engine_state,
)
from systems.matching.exact import _BATCH_DTYPES, _RESTING_DTYPES

_LIMIT, _MARKET, _IOC = int(OrderType.LIMIT), int(OrderType.MARKET), int(OrderType.IOC)
_POST_ONLY, _CANCEL, _MODIFY = int(OrderType.POST_ONLY), int(OrderType.CANCEL), int(OrderType.MODIFY)


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
    side: jax.Array  # i8 the side the order trades from (a MODIFY's: its order's)
    fill_qty: jax.Array  # i64[capacity]
    fill_price: jax.Array  # i64[capacity]
    maker_id: jax.Array  # i64[capacity]
    maker_agent: jax.Array  # i32[capacity]
    maker_removed: jax.Array  # bool[capacity] removed by self-trade prevention CANCEL_MAKER


def _key(row, price):
    """Ascending sort key of ``price`` on ``row`` (0 bids, 1 asks)."""
    return jnp.where(row == 0, -price, price)


def _shift_left(f, n: int):
    """``f`` moved ``n`` slots toward the front (a static shift), zeros behind."""
    return jnp.concatenate([f[n:], jnp.zeros((n,), f.dtype)]) if n < f.shape[0] else jnp.zeros_like(f)


def _shift_right(f, n: int):
    """``f`` moved ``n`` slots toward the back (a static shift), zeros in front."""
    return jnp.concatenate([jnp.zeros((n,), f.dtype), f[:-n]]) if n < f.shape[0] else jnp.zeros_like(f)


ONE_HOT_MAX = 32
"""The largest capacity for which :func:`_remove_prefix` picks each slot's new value with
a one-hot compare over the row (``C x C`` per field, in registers at 32) rather than a
barrel shifter of ``log2(C) + 1`` static shifts: at 32 a side and 64 books the match of a
tick's orders takes 4.7 ms instead of 6.4; at 64 a side, 30 ms instead of 11.6."""


def _remove_prefix(fields, k, gather: bool = False):
    """Drop the first ``k`` slots of each ``[capacity]`` array (shift left, zero-fill).
    ``gather``: one read at the shifted index (the cheaper form for a single book);
    otherwise, up to :data:`ONE_HOT_MAX` slots, a one-hot pick of each slot's source, and
    beyond, a barrel shifter of static shifts by the bits of ``k``. Under ``vmap`` the
    gather form made XLA's CPU code generator (JAX 0.10.2, LLVM) crash in about half of
    the compilations, so every batched path uses one of the others."""
    c = fields[0].shape[0]
    if gather:
        src = jnp.arange(c) + k
        return [jnp.where(src < c, f[jnp.minimum(src, c - 1)], 0) for f in fields]
    if c <= ONE_HOT_MAX:  # slot j takes slot j + k: the one term of a masked sum, exact for integers
        pick = jnp.arange(c)[None, :] == jnp.arange(c)[:, None] + k
        return [jnp.where(pick, f[None, :], 0).sum(axis=1).astype(f.dtype) for f in fields]
    out = list(fields)
    for bit in range(max(c - 1, 0).bit_length() + 1):
        step = 1 << bit
        on = (k >> bit) & 1 == 1
        out = [jnp.where(on, _shift_left(f, step), f) for f in out]
    return out


def _remove_at(fields, p, on):
    """Drop slot ``p`` of each array where ``on`` (the slots after it move up one)."""
    after = on & (jnp.arange(fields[0].shape[0]) >= p)
    return [jnp.where(after, _shift_left(f, 1), f) for f in fields]


def _insert_at(fields, values, p, on):
    """Write ``values`` at slot ``p`` where ``on``, the slots from ``p`` moved back one
    (the last slot falls off: callers insert only into a row with a free slot)."""
    j = jnp.arange(fields[0].shape[0])
    out = []
    for f, v in zip(fields, values):
        moved = jnp.where(j > p, _shift_right(f, 1), jnp.where(j == p, jnp.asarray(v, f.dtype), f))
        out.append(jnp.where(on, moved, f))
    return out


def _row(book: Book, r):
    """Row ``r`` (0 or 1) of each field, as a select."""
    return [jnp.where(r == 0, a[0], a[1]) for a in (book.price, book.qty, book.id, book.agent)]


def _set_row(book: Book, r, fields) -> Book:
    """``book`` with row ``r`` replaced by ``fields``, as a select. (Two dynamic
    ``.at[r].set`` writes in a row, on a book read by a dynamic index, came out wrong
    under jit on XLA's CPU backend with JAX 0.10.2: the id and agent rows were filled
    with the inserted value. The select form is exact; the device tests pin it.)"""
    m = (jnp.arange(2) == r)[:, None]
    price, qty, oid, agent = fields
    return Book(price=jnp.where(m, price[None], book.price), qty=jnp.where(m, qty[None], book.qty),
                id=jnp.where(m, oid[None], book.id), agent=jnp.where(m, agent[None], book.agent))


def process_order(book: Book, o: Order, tick_size, stp: int, symbol_ok=True,
                  live_elsewhere=False, gather: bool = False) -> tuple[Book, Step]:
    """Apply one order to ``book`` (``stp``: a static :class:`STP` mode). In a market of
    several books, ``symbol_ok`` says whether the order's symbol exists (else
    ``UNKNOWN_SYMBOL``) and ``live_elsewhere`` whether its id rests in another book (a new
    order with it is a ``DUPLICATE_ID``). ``gather`` (static): see :func:`_remove_prefix`;
    never under ``vmap``."""
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
    # the target's row, slot and fields (a live id is in one slot of a book at most)
    t_row = hit[1].any().astype(jnp.int32)
    t_pos = (hit.any(axis=0) * jnp.arange(book.capacity)).sum().astype(jnp.int32)
    t_price, t_qty = jnp.where(hit, book.price, 0).sum(), jnp.where(hit, book.qty, 0).sum()
    t_agent = jnp.where(hit, book.agent, 0).sum()
    safe_tick = jnp.maximum(tick_size, 1)
    # the side the order trades from: its own for a new order, its target's for a MODIFY
    own = jnp.where(targets, t_row, side)
    opp = 1 - own
    opp_best = jnp.where(opp == 0, best_bid, best_ask)  # 0: that side is empty
    crosses_opp = (opp_best > 0) & jnp.where(own == 0, opp_best <= price, opp_best >= price)
    full = jnp.where(own == 0, live[0, -1], live[1, -1])
    checks = [
        ((kind < 0) | (kind > _MODIFY), Reason.BAD_KIND),
        (~jnp.asarray(symbol_ok), Reason.UNKNOWN_SYMBOL),
        (is_new & (side != int(Side.BUY)) & (side != int(Side.SELL)), Reason.BAD_SIDE),
        ((kind != _CANCEL) & ((qty <= 0) | (qty > MAX_QTY)), Reason.BAD_QTY),
        (priced & ((price <= 0) | (price > MAX_PRICE)), Reason.BAD_PRICE),
        (priced & (price % safe_tick != 0), Reason.OFF_TICK),
        (is_new & (found | live_elsewhere), Reason.DUPLICATE_ID),
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
    opp_fields = _remove_prefix([m_price, m_qty - take, m_id, m_agent], used.sum(), gather)

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
        arrival_depth=jnp.where(ok & (kind != _CANCEL), jnp.where(opp == 0, depth[0], depth[1]), z),
        side=own.astype(jnp.int8), fill_qty=jnp.where(ok, take, 0), fill_price=m_price, maker_id=m_id,
        maker_agent=m_agent, maker_removed=ok & used & (take == 0),
    )
    return book, step


def process_orders(book: Book, orders: Order, tick_size, stp: int) -> tuple[Book, Step]:
    """Apply ``orders`` (each field ``[B]``) in array order: ``lax.scan`` of
    :func:`process_order`; the steps come back stacked ``[B, ...]``."""
    return jax.lax.scan(lambda b, o: process_order(b, o, tick_size, stp), book, orders)


@struct.dataclass
class MarketOrder(Order):
    """An order of a market of several books: :class:`Order` plus its ``symbol``."""

    symbol: jax.Array


def _market_step(books: Book, o: MarketOrder, tick_size, stp: int, gather: bool) -> tuple[Book, Step]:
    """One order of a market (books ``[S, 2, capacity]``) on its symbol's book, with the
    symbol and the id checked across the market. Only that book is read and written back
    (a dynamic slice and update), so a step costs one book's work plus the id check."""
    n_symbols = books.qty.shape[0]
    if n_symbols == 1:  # no symbol to look up, no other book to search
        here, out = process_order(jax.tree.map(lambda a: a[0], books), o, tick_size[0], stp, o.symbol == 0,
                                  False, gather)
        return jax.tree.map(lambda a: a[None], here), out
    s = jnp.clip(o.symbol, 0, n_symbols - 1)
    here = jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, s, 0, keepdims=False), books)
    rests = ((books.qty > 0) & (books.id == o.id)).any(axis=(1, 2))
    elsewhere = (rests & (jnp.arange(n_symbols) != s)).any()
    ok_symbol = (o.symbol >= 0) & (o.symbol < n_symbols)
    tick = jax.lax.dynamic_index_in_dim(tick_size, s, 0, keepdims=False)
    here, out = process_order(here, o, tick, stp, ok_symbol, elsewhere, gather)
    return jax.tree.map(lambda a, h: jax.lax.dynamic_update_index_in_dim(a, h, s, 0), books, here), out


def process_market(books: Book, orders: MarketOrder, tick_size, stp: int) -> tuple[Book, Step]:
    """Apply ``orders`` (``[B]``) in array order to a market's books (each field
    ``[S, 2, capacity]``): each row works on its symbol's book, with the symbol and the
    id checked across the market (an unknown symbol is ``UNKNOWN_SYMBOL``; a new order's
    id resting in any book is a ``DUPLICATE_ID``)."""
    return jax.lax.scan(lambda bk, o: _market_step(bk, o, tick_size, stp, gather=True), books, orders)


@struct.dataclass
class Matched:
    """A batch matched on the device (:func:`match_batch`), in the write phase's layouts
    (``systems.match``): B batch rows, S symbols, C capacity per side.

    ``fills`` and the makers among ``updates`` sit in one buffer of ``S * 2C + 2B + C``
    slots: each order writes its fills at the next free slot, and no tick can need more
    (every fill but an order's last uses up a maker, and at most ``S * 2C`` makers rest at
    the start of a tick and ``B`` come to rest during it), so nothing is ever dropped."""

    fills: jax.Array  # i64[6, F] systems.match.FILL_FIELDS, in the order they happened; padding qty 0
    fill_ids: jax.Array  # i64[2, F] the taker's and the maker's order id of each slot of ``fills``
    updates: jax.Array  # i64[4, U] id, remaining, price, symbol at the end; padding id -1
    top: jax.Array  # i64[4, S] bid price, bid qty, ask price, ask qty after the batch
    status: jax.Array  # i64[len(Status)] outcomes of the valid rows, per status
    arrival: jax.Array  # i32[B] batch row of each arrival (valid rows first)
    n: jax.Array  # i32[] valid rows (arrivals)
    outcomes: Outcomes  # [B] each arrival's outcome, in arrival order (rows >= n: NONE)
    book_full: jax.Array  # i64[] arrivals refused for a full side (Reason.BOOK_FULL)


WIDTH = 8
"""Makers (filled, or removed by self-trade prevention) kept per arrival at each step of
the by-symbol match (:func:`_by_symbol`); a step with an arrival that touches more keeps
all of its makers in one of :data:`SPILLS` spill slots."""
SPILLS = 64
"""Steps of one by-symbol match that may keep an arrival's makers beyond :data:`WIDTH`; a
batch that needs more is matched again in arrival order."""


def match_batch(books: Book, orders: OrderBatch, arrival, tick_size, stp: int,
                axis_name: str | None = None, in_order: bool = False) -> tuple[Book, Matched]:
    """Match the valid rows of ``orders`` (fields ``[B]``, JAX) against a market's books
    (``[S, 2, capacity]``), in the order ``arrival`` gives (i32[B], the valid rows first:
    ``systems.match.arrival_rows``). Pure and jit-able; the same fills, outcomes and
    books as :func:`process_market` on those rows in that order (``fills`` may hold empty
    slots between them, and ``updates`` lists the same ids in another order).

    Two forms give that. In arrival order (:func:`_in_arrival_order`), one loop step per
    arrival works on its symbol's book. By symbol (:func:`_by_symbol`), loop step ``k``
    applies every symbol's ``k``-th arrival to its own book, all books at once, so the loop
    runs only as many steps as the busiest symbol has arrivals: orders of different
    symbols meet only through their ids (a new order whose id rests in another book is a
    ``DUPLICATE_ID``), and it is taken only when no id of the batch can cross symbols
    (:func:`_ids_may_cross`) and at most :data:`SPILLS` steps have an arrival that
    touches more than :data:`WIDTH` makers (else the batch is matched again in arrival
    order). A single market of several symbols takes the by-symbol form (about half the
    time of the other on the default market); markets under a ``vmap`` take the arrival
    order, whose steps are smaller (each touches one book, not all), which is what counts
    once a step's work is spread over many markets (at 8 default markets it is already
    the faster by 10%).

    ``axis_name``: the name of a ``vmap`` axis over markets that this call is inside
    (``qtg.core.rollout.rollout_markets``). The loop then runs to the largest count of
    arrivals across that axis, a number every market shares (a market's rows past its own
    count are invalid and change nothing). Without it, under a ``vmap`` the count differs
    per market and JAX selects every carried array at every step, and a market of several
    symbols runs both forms (the same results, several times slower): ``in_order`` (static)
    takes the arrival order whatever the market, what a caller that is vmapped by code it
    does not own wants (the RL environments: at 64 markets of 4 symbols, 9 times faster);
    such a caller calls :func:`match_markets`, which names the axis for it."""
    S = books.qty.shape[0]
    n = orders.valid.sum().astype(jnp.int32)
    arrived = MarketOrder(**{f.name: getattr(orders, f.name)[arrival] for f in dataclasses.fields(MarketOrder)})
    if in_order or S == 1 or (axis_name is not None and jax.lax.axis_size(axis_name) > 1):
        books, m = _in_arrival_order(books, arrived, n, tick_size, stp, axis_name)
        return books, m.replace(arrival=arrival)

    def share(flag):  # unbatched under the market axis (of one market here), so a real branch
        return flag if axis_name is None else jax.lax.pmax(flag.astype(jnp.int32), axis_name) > 0

    cross = share(_ids_may_cross(books, arrived))
    _, blank = jax.eval_shape(lambda: _in_arrival_order(books, arrived, n, tick_size, stp, None))
    blank = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), blank)
    by_books, by_m, done = jax.lax.cond(
        cross, lambda: (books, blank, jnp.bool_(False)),
        lambda: _by_symbol(books, arrived, n, tick_size, stp, axis_name))
    books, m = jax.lax.cond(share(done), lambda: (by_books, by_m),
                            lambda: _in_arrival_order(books, arrived, n, tick_size, stp, axis_name))
    return books, m.replace(arrival=arrival)


MARKETS = "qtg_markets"
"""The ``vmap`` axis name :func:`match_markets` gives the markets it batches."""


def match_markets(books: Book, orders: OrderBatch, arrival, tick_size, stp: int,
                  in_order: bool = False) -> tuple[Book, Matched]:
    """:func:`match_batch` for a caller that does not name the ``vmap`` axes it may run
    under (the RL environments, vmapped by their users' code). Unbatched, it is
    ``match_batch``. Under any ``vmap`` (nested ones too, merged into one axis of
    markets) it is ``match_batch`` vmapped over the markets with a named axis, so its
    loop over the arrivals runs to the largest count of arrivals of any market, a number
    they all share: without a name each market's count is its own, and JAX then selects
    every array the loop carries, at every step, between the markets that are done and
    those that are not (a step of 64 trading environments: see ``docs/performance.md``)."""
    return _one_market(int(stp), bool(in_order))(books, orders, arrival, tick_size)


@functools.cache
def _one_market(stp: int, in_order: bool):
    """The :func:`match_markets` of one ``stp`` and ``in_order``: a ``custom_vmap``
    function whose batching rule hands the markets to :func:`_many_markets`."""
    many = _many_markets(stp, in_order)

    @jax.custom_batching.custom_vmap
    def one(books, orders, arrival, tick_size):
        return match_batch(books, orders, arrival, tick_size, stp, None, in_order)

    @one.def_vmap
    def _(axis_size, in_batched, *args):
        out = many(*_broadcast(axis_size, in_batched, args))
        return out, jax.tree.map(lambda _: True, out)

    return one


def _broadcast(axis_size: int, in_batched, args):
    """``args`` with a leading axis of ``axis_size`` on every leaf (unbatched leaves are
    broadcast to it)."""
    return jax.tree.map(lambda on, a: a if on else jnp.broadcast_to(a, (axis_size,) + jnp.shape(a)),
                        tuple(in_batched), tuple(args))


@functools.cache
def _many_markets(stp: int, in_order: bool):
    """Markets along the leading axis of every argument, matched by ``match_batch`` under a
    ``vmap`` named :data:`MARKETS`. Batched again (a ``vmap`` outside the first), the new
    axis is folded into the markets' axis: one loop for all of them still."""

    @jax.custom_batching.custom_vmap
    def many(books, orders, arrival, tick_size):
        return jax.vmap(lambda b, o, a, t: match_batch(b, o, a, t, stp, MARKETS, in_order),
                        axis_name=MARKETS)(books, orders, arrival, tick_size)

    @many.def_vmap
    def _(axis_size, in_batched, *args):
        args = _broadcast(axis_size, in_batched, args)
        flat = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), args)
        out = many(*flat)
        out = jax.tree.map(lambda a: a.reshape((axis_size, -1) + a.shape[1:]), out)
        return out, jax.tree.map(lambda _: True, out)

    return many


def _ids_may_cross(books: Book, arrived: MarketOrder):
    """bool[]: whether an order of the batch could meet one of another symbol, so the
    batch must be matched in arrival order: a valid row names no symbol of the market, or
    a new order's id is also the id of a live resting order or of a row that could rest
    (LIMIT, POST_ONLY, MODIFY) on another symbol. One sort of those ids; usually false
    (a tick's new orders have ids no other order has)."""
    S = books.qty.shape[0]
    kind, sym, valid = arrived.kind.astype(jnp.int32), arrived.symbol.astype(jnp.int32), arrived.valid
    bad = (valid & ((sym < 0) | (sym >= S))).any()
    live = books.qty > 0
    book_sym = jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32)[:, None, None], books.qty.shape)
    can_rest = valid & ((kind == _LIMIT) | (kind == _POST_ONLY) | (kind == _MODIFY))
    low = jnp.iinfo(jnp.int64).min
    ids = jnp.concatenate([jnp.where(live, books.id, low).reshape(-1), jnp.where(can_rest, arrived.id, low)])
    syms = jnp.concatenate([book_sym.reshape(-1), sym])
    order = jnp.lexsort((syms, ids))
    ids, syms = ids[order], syms[order]
    new = valid & (kind >= _LIMIT) & (kind <= _POST_ONLY)
    q = arrived.id.astype(jnp.int64)
    lo = jnp.searchsorted(ids, q, side="left")
    hi = jnp.searchsorted(ids, q, side="right")
    last = ids.shape[0] - 1
    first_sym, last_sym = syms[jnp.minimum(lo, last)], syms[jnp.clip(hi - 1, 0, last)]
    other = (hi > lo) & ((first_sym != sym) | (last_sym != sym))
    return bad | (new & other).any()


def _by_symbol(books: Book, arrived: MarketOrder, n, tick_size, stp: int,
               axis_name: str | None = None) -> tuple[Book, Matched, jax.Array]:
    """Each symbol's arrivals through its own book in their order, all symbols at once:
    loop step ``k`` applies every symbol's ``k``-th arrival (a ``vmap`` over the books of
    :func:`process_order`). A step keeps the first :data:`WIDTH` makers each arrival
    touched, and a step in which one touched more keeps all of its makers as well (at
    most :data:`SPILLS` such steps: the third result is false when there were more, and
    the caller matches the batch in arrival order). Right only when no id crosses
    symbols (:func:`_ids_may_cross`)."""
    S, _, C = books.qty.shape
    B = arrived.valid.shape[0]
    W, J = min(WIDTH, C), SPILLS
    F = _fill_slots(books, B)
    sym = jnp.clip(arrived.symbol.astype(jnp.int32), 0, S - 1)
    mine = arrived.valid[:, None] & (sym[:, None] == jnp.arange(S))  # [B, S]
    k_of = (jnp.cumsum(mine, axis=0) - 1)[jnp.arange(B), sym].astype(jnp.int32)  # its place among its symbol's
    trips = mine.sum(axis=0).max().astype(jnp.int32)

    def share(x):  # one value for every market along the axis: a real branch or loop bound
        return x if axis_name is None else jax.lax.pmax(x, axis_name)

    # row of each symbol's k-th arrival; B (an invalid row appended below) where it has none
    grid = jnp.full((S, B), B, jnp.int32).at[jnp.where(arrived.valid, sym, S), k_of].set(
        jnp.arange(B, dtype=jnp.int32), mode="drop")
    padded = jax.tree.map(lambda a: jnp.concatenate([a, jnp.zeros((1,), a.dtype)]), arrived)
    scalars = (*(f.name for f in dataclasses.fields(Outcomes)), "side")
    narrow = ("fill_qty", "fill_price", "maker_id", "maker_agent", "maker_removed")
    _, st0 = jax.eval_shape(lambda: process_order(jax.tree.map(lambda a: a[0], books),
                                                  jax.tree.map(lambda a: a[0], padded), tick_size[0], stp))
    ys0 = {**{k: jnp.zeros((B, S), getattr(st0, k).dtype) for k in scalars}, "used": jnp.zeros((B, S), jnp.int32),
           **{k: jnp.zeros((B, S, W), getattr(st0, k).dtype) for k in narrow}}
    spill0 = {k: jnp.zeros((J, S, C), getattr(st0, k).dtype) for k in narrow}
    slots = jnp.arange(C)
    step = jax.vmap(lambda b, o, t: process_order(b, o, t, stp, True, False, False))

    def body(k, carry):
        bk, ys, spill, spill_k, j = carry
        o = jax.tree.map(lambda a: a[grid[:, k]], padded)
        bk, st = step(bk, o, tick_size)
        touched = (st.fill_qty > 0) | st.maker_removed
        used = jnp.max(jnp.where(touched, slots + 1, 0), axis=-1).astype(jnp.int32)  # touched makers are a prefix
        now = {**{name: getattr(st, name) for name in scalars}, "used": used,
               **{name: getattr(st, name)[:, :W] for name in narrow}}
        ys = {name: jax.lax.dynamic_update_index_in_dim(buf, now[name], k, 0) for name, buf in ys.items()}

        def keep(args):
            spill, spill_k, j = args
            at = jnp.minimum(j, J - 1)
            spill = {name: jax.lax.dynamic_update_index_in_dim(buf, getattr(st, name), at, 0)
                     for name, buf in spill.items()}
            return spill, spill_k.at[at].set(k), j + 1

        spill, spill_k, j = jax.lax.cond(share((used > W).any().astype(jnp.int32)) > 0, keep, lambda a: a,
                                         (spill, spill_k, j))
        return bk, ys, spill, spill_k, j

    books, ys, spill, spill_k, j = jax.lax.fori_loop(
        0, share(trips), body, (books, ys0, spill0, jnp.full((J,), B, jnp.int32), jnp.int32(0)))
    # Back to arrival order: arrival p was step k_of[p] of symbol sym[p].
    first = jnp.arange(B) < n
    k_at = jnp.where(first, k_of, 0)
    pick = {name: buf[k_at, sym] for name, buf in ys.items()}
    outcomes = Outcomes(**{f.name: jnp.where(first, pick[f.name], 0) for f in dataclasses.fields(Outcomes)})
    wide = first & (pick["used"] > W)  # arrivals whose makers are in a spill, not in ``ys``
    narrow_on = (first & ~wide)[:, None]
    fq = jnp.where(narrow_on, pick["fill_qty"], 0)  # [B, W] rows in arrival order, makers by priority
    # spill j, symbol s: the arrival at step spill_k[j] of symbol s (row B: none)
    row = grid[:, jnp.minimum(spill_k, B - 1)].T  # [J, S]
    on = (jnp.arange(J) < j)[:, None] & (row < B)
    row = jnp.minimum(row, B - 1)
    on = (on & wide[row])[..., None]
    fq_s = jnp.where(on, spill["fill_qty"], 0)  # [J, S, C]

    def place(keep, keep_s):
        """Slots of the kept entries in F: arrivals in order, each one's makers by priority."""
        count = keep.sum(axis=1)
        if keep_s is not None:
            count = count.at[row.reshape(-1)].add(keep_s.sum(axis=-1).reshape(-1))
        start = jnp.cumsum(count) - count
        at = jnp.where(keep, start[:, None] + jnp.cumsum(keep, axis=1) - 1, F)
        at_s = None if keep_s is None else jnp.where(keep_s, start[row][..., None] + jnp.cumsum(keep_s, axis=-1) - 1, F)
        return at, at_s

    def put(fill, values, at, values_s, at_s):
        """``values`` ([..., B, W]) and ``values_s`` ([..., J, S, C]) at their slots of F."""
        lead = values.shape[:-2]
        out = jnp.full(lead + (F,), fill, jnp.int64)
        out = out.at[..., at.reshape(-1)].set(values.reshape(lead + (-1,)).astype(jnp.int64), mode="drop")
        if at_s is None:
            return out
        return out.at[..., at_s.reshape(-1)].set(values_s.reshape(lead + (-1,)).astype(jnp.int64), mode="drop")

    def each(a):  # an arrival's value at each of its maker slots, both layouts
        a = a.astype(jnp.int64)
        return jnp.broadcast_to(a[:, None], (B, W)), jnp.broadcast_to(a[row][..., None], (J, S, C))

    agent, symbol, side, taker = each(arrived.agent), each(arrived.symbol), each(pick["side"]), each(arrived.id)

    def assemble(spilled: bool):
        """The fills, their ids and the touched makers' ids, with the spills or (none
        taken, the usual tick) without reading them."""
        def sp(x):
            return x if spilled else None
        at, at_s = place(fq > 0, sp(fq_s > 0))
        fills = put(0, jnp.stack([agent[0], pick["maker_agent"], symbol[0], side[0], pick["fill_price"], fq]), at,
                    jnp.stack([agent[1], spill["maker_agent"], symbol[1], side[1], spill["fill_price"], fq_s]), at_s)
        fill_ids = put(0, jnp.stack([taker[0], pick["maker_id"]]), at,
                       jnp.stack([taker[1], spill["maker_id"]]), at_s)
        at, at_s = place((fq > 0) | (narrow_on & pick["maker_removed"]),
                         sp((fq_s > 0) | (on & spill["maker_removed"])))
        return fills, fill_ids, put(-1, pick["maker_id"], at, spill["maker_id"], at_s)

    fills, fill_ids, makers = jax.lax.cond(share(j) > 0, lambda: assemble(True), lambda: assemble(False))
    return books, _matched(books, arrived, n, fills, fill_ids, makers, outcomes), j <= J


def _fill_slots(books: Book, rows: int) -> int:
    """F, the fill slots of a batch of ``rows`` rows (:class:`Matched`): every fill but an
    order's last uses up a maker, and at most ``S * 2C`` makers rest at the start and
    ``rows`` come to rest during it, so ``S * 2C + 2 * rows + C`` slots always suffice."""
    S, _, C = books.qty.shape
    return S * 2 * C + 2 * rows + C


NARROW = 4
"""Maker slots a step of the arrival-order match writes (:func:`_in_arrival_order`) when
no arrival touched more; a step in which one did writes all ``capacity``."""


def _in_arrival_order(books: Book, arrived: MarketOrder, n, tick_size, stp: int,
                      axis_name: str | None) -> tuple[Book, Matched]:
    """Every arrival in turn through its symbol's book (one loop step each), the symbol
    and the id checked across the market: the general form of :func:`match_batch`.

    Each step writes its arrival's fills at the next free slots of one buffer. Slots past
    them hold zeros (-1 for the touched makers) until written, so a step need only write
    the makers its arrival touched: :data:`NARROW` slots, or all ``capacity`` in a step
    where an arrival (of any market along ``axis_name``) touched more."""
    C = books.qty.shape[-1]
    B = arrived.valid.shape[0]
    trips = n if axis_name is None else jax.lax.pmax(n, axis_name)
    F = _fill_slots(books, B)
    names = [f.name for f in dataclasses.fields(Outcomes)]
    carry0 = (books, jnp.zeros((6, F), jnp.int64), jnp.zeros((2, F), jnp.int64), jnp.full((F,), -1, jnp.int64),
              jnp.zeros((len(names), B), jnp.int64), jnp.int32(0))
    slots = jnp.arange(C)

    def body(i, carry):
        bk, fills, ids, makers, outs, at = carry
        o = jax.tree.map(lambda a: a[i], arrived)
        bk, st = _market_step(bk, o, tick_size, stp, gather=False)
        touched = (st.fill_qty > 0) | st.maker_removed
        used = jnp.max(jnp.where(touched, slots + 1, 0)).astype(jnp.int32)  # touched makers are a prefix

        def write(width: int):
            def run(fills, ids, makers):
                w = slice(0, width)
                each = functools.partial(jnp.full, (width,), dtype=jnp.int64)
                traded = st.fill_qty[w] > 0
                block = jnp.stack([each(o.agent), st.maker_agent[w].astype(jnp.int64), each(o.symbol),
                                   each(st.side), st.fill_price[w], st.fill_qty[w]])
                fills = jax.lax.dynamic_update_slice(fills, jnp.where(traded[None], block, 0), (jnp.int32(0), at))
                pair = jnp.stack([each(o.id), st.maker_id[w]])
                ids = jax.lax.dynamic_update_slice(ids, jnp.where(traded[None], pair, 0), (jnp.int32(0), at))
                makers = jax.lax.dynamic_update_slice(makers, jnp.where(touched[w], st.maker_id[w], -1), (at,))
                return fills, ids, makers
            return run

        if C <= NARROW:
            fills, ids, makers = write(C)(fills, ids, makers)
        else:
            wide = used > NARROW
            wide = wide if axis_name is None else jax.lax.pmax(wide.astype(jnp.int32), axis_name) > 0
            fills, ids, makers = jax.lax.cond(wide, write(C), write(NARROW), fills, ids, makers)
        row = jnp.stack([getattr(st, k).astype(jnp.int64) for k in names])[:, None]
        outs = jax.lax.dynamic_update_slice(outs, row, (jnp.int32(0), i))
        return bk, fills, ids, makers, outs, at + used

    books, fills, fill_ids, makers, outs, _ = jax.lax.fori_loop(0, trips, body, carry0)
    outcomes = Outcomes(**{k: outs[j].astype(jnp.int8 if k in ("status", "reason") else jnp.int64)
                           for j, k in enumerate(names)})
    return books, _matched(books, arrived, n, fills, fill_ids, makers, outcomes)


def _matched(books: Book, arrived: MarketOrder, n, fills, fill_ids, makers, outcomes: Outcomes) -> Matched:
    """The :class:`Matched` of a batch: its fills, the touched makers' ids (``makers``,
    -1 padding) and the outcomes in arrival order, with the books after it."""
    B = arrived.valid.shape[0]
    status = outcomes.status.astype(jnp.int32)
    accepted = (status != int(Status.NONE)) & (status != int(Status.REJECTED))
    ids = jnp.concatenate([jnp.where(accepted, arrived.id.astype(jnp.int64), -1), makers])
    first = jnp.arange(B) < n
    counts = (jax.nn.one_hot(jnp.where(first, status, -1), len(Status), dtype=jnp.int64)).sum(axis=0)
    return Matched(
        fills=fills, fill_ids=fill_ids, updates=_final_state(books, ids), top=_top(books), status=counts,
        arrival=jnp.zeros((B,), jnp.int32), n=n, outcomes=outcomes,
        book_full=(first & (outcomes.reason == int(Reason.BOOK_FULL))).sum().astype(jnp.int64))


def _final_state(books: Book, ids):
    """i64[4, U]: each of ``ids`` (-1: padding), its remaining quantity, price and symbol
    in ``books`` (0, 0, 0 where it does not rest), found by one sort of the resting ids."""
    C = books.qty.shape[-1]
    live = books.qty.reshape(-1) > 0
    book_ids = jnp.where(live, books.id.reshape(-1), jnp.iinfo(jnp.int64).max)
    by_id = jnp.argsort(book_ids)
    sorted_ids = book_ids[by_id]
    at = by_id[jnp.clip(jnp.searchsorted(sorted_ids, ids), 0, book_ids.shape[0] - 1)]
    found = (ids >= 0) & (book_ids[at] == ids)
    remaining = jnp.where(found, books.qty.reshape(-1)[at], 0)
    price = jnp.where(found, books.price.reshape(-1)[at], 0)
    symbol = jnp.where(found, at // (2 * C), 0)
    return jnp.stack([ids, remaining, price, symbol.astype(jnp.int64)])


def _top(books: Book):
    """i64[4, S]: best bid, shares at it, best ask, shares at it (0 where a side is empty)."""
    live = books.qty > 0
    best = jnp.where(live[..., 0], books.price[..., 0], 0)  # [S, 2]
    at_best = live & (books.price == best[..., None])
    size = jnp.where(at_best, books.qty, 0).sum(axis=-1)
    return jnp.stack([best[:, 0], size[:, 0], best[:, 1], size[:, 1]])


# ---------------------------------------------------------------------- the host engine
DEFAULT_CAPACITY = 256
"""Orders per book side of ``engine=device`` unless ``engine.capacity`` says otherwise."""
_MIN_ROWS = 16
_run_market = jax.jit(process_market, static_argnames=("stp",))


def process_symbols(books: Book, orders: Order, tick_size, stp: int) -> tuple[Book, Step]:
    """Each symbol's orders (fields ``[S, L]``, in arrival order, padded with invalid
    rows) through its own book (``[S, 2, capacity]``): a ``vmap`` over symbols of
    :func:`process_orders`. The same as :func:`process_market` on the rows merged in
    arrival order whenever no id is used on two symbols (the only way one symbol's orders
    can change another's outcomes)."""
    return jax.vmap(lambda b, o, t: process_orders(b, o, t, stp))(books, orders, tick_size)


_run_symbols = jax.jit(process_symbols, static_argnames=("stp",))


def _look_up(resting: dict[str, np.ndarray], ids: np.ndarray, fields: tuple[str, ...]):
    """For each of ``ids``: whether it rests, and its ``fields`` from ``resting`` (the
    columns of :meth:`DeviceEngine.resting_orders`; 0 where it does not rest)."""
    if not len(resting["id"]):
        return np.zeros(len(ids), bool), {f: np.zeros(len(ids), resting[f].dtype) for f in fields}
    by_id = np.argsort(resting["id"], kind="stable")
    at = by_id[np.minimum(np.searchsorted(resting["id"][by_id], ids), len(by_id) - 1)]
    live = resting["id"][at] == ids
    return live, {f: np.where(live, resting[f][at], 0).astype(resting[f].dtype) for f in fields}


def _rows(n: int) -> int:
    """Padded batch length: the next power of two, at least _MIN_ROWS (few compilations)."""
    return max(_MIN_ROWS, 1 << max(n - 1, 0).bit_length())


class DeviceEngine:
    """The :class:`~systems.matching.Engine` protocol over :func:`process_symbols` and
    :func:`process_market`: the books live on the device as ``[S, 2, capacity]`` arrays,
    a batch is padded to a power of two rows (invalid rows) and matched by one jitted
    call, and the outcomes, fills and updates are assembled on the host with NumPy. Identical to the exact engine for
    every stream that never finds a side full; an order that would rest on a full side
    is refused with ``Reason.BOOK_FULL`` and counted (``stats()["book_full"]``).

    Args:
        tick_size: array-like i64[S], each symbol's tick size in units (> 0).
        stp: self-trade prevention mode (:class:`STP`).
        capacity: orders per book side (>= 1).
    """

    name = "device"

    def __init__(self, tick_size, stp: int = STP.NONE, capacity: int = DEFAULT_CAPACITY):
        tick = np.atleast_1d(np.asarray(tick_size, dtype=np.int64))
        if tick.ndim != 1 or tick.shape[0] == 0 or np.any(tick <= 0):
            raise ValueError(f"tick_size must be a non-empty 1-D array of positive ints, got {tick_size!r}")
        if int(capacity) < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.tick_size = tick
        self.n_symbols = int(tick.shape[0])
        self.stp = STP(int(stp))
        self.capacity = int(capacity)
        self._tick = jnp.asarray(tick)
        self._books = empty_book(self.capacity, self.n_symbols)
        self._host: Book | None = None  # a NumPy copy of the books, made when read
        self._n_processed = self._n_fills = self._n_batches = self._n_full = 0

    # ------------------------------------------------------------------ processing
    def process(self, batch: OrderBatch) -> MatchResult:
        """Match one batch of orders, rows in array order (see :class:`ExactEngine`).

        When no id is used on two symbols (in the batch, or by a new order and a resting
        order of another symbol) each symbol's rows go through its own book, all books at
        once (:func:`process_symbols`); otherwise the rows run one market-wide scan
        (:func:`process_market`). Both give what the exact engine gives."""
        cols = {k: np.asarray(getattr(batch, k), dt) for k, dt in _BATCH_DTYPES.items()}
        n = cols["valid"].shape[0] if cols["valid"].ndim == 1 else -1
        if any(c.shape != (n,) for c in cols.values()):
            raise ValueError("OrderBatch fields must all be 1-D of the same length")
        s = self._by_symbol(cols) if self._ids_stay_on_their_symbol(cols) else self._in_one_scan(cols)
        self._host = None
        outcomes = Outcomes(status=s.status, reason=s.reason, filled=s.filled, resting=s.resting,
                            filled_value=s.filled_value, arrival_bid=s.arrival_bid,
                            arrival_ask=s.arrival_ask, arrival_depth=s.arrival_depth)
        row, slot = np.nonzero(s.fill_qty > 0)  # row-major: rows in order, makers by priority
        fills = FillBatch(
            taker_id=cols["id"][row], maker_id=s.maker_id[row, slot], taker_agent=cols["agent"][row],
            maker_agent=s.maker_agent[row, slot], symbol=cols["symbol"][row], side=s.side[row],
            price=s.fill_price[row, slot], qty=s.fill_qty[row, slot])
        self._n_batches += 1
        self._n_processed += int(cols["valid"].sum())
        self._n_fills += len(row)
        self._n_full += int((s.reason == int(Reason.BOOK_FULL)).sum())
        return MatchResult(outcomes=outcomes, fills=fills, updates=self._updates(cols["id"], s))

    def _in_one_scan(self, cols: dict[str, np.ndarray]) -> Step:
        """Every row through :func:`process_market`; the steps as NumPy, ``[n, ...]``."""
        n = cols["valid"].shape[0]
        rows = _rows(n)
        padded = {k: np.concatenate([c, np.zeros(rows - n, c.dtype)]) for k, c in cols.items()}
        self._books, steps = _run_market(self._books, MarketOrder(**padded), self._tick, stp=int(self.stp))
        return jax.tree.map(lambda a: np.asarray(a)[:n], jax.device_get(steps))

    def _ids_stay_on_their_symbol(self, cols: dict[str, np.ndarray]) -> bool:
        """Whether no id of the batch's valid rows is used on two symbols, and no new
        order's id rests on another symbol."""
        sym, ids, kind = cols["symbol"], cols["id"], cols["kind"]
        on = cols["valid"] & (sym >= 0) & (sym < self.n_symbols)
        if not on.any():
            return True
        pairs = np.unique(np.stack([ids[on], sym[on].astype(np.int64)]), axis=1)
        if len(np.unique(pairs[0])) != pairs.shape[1]:
            return False  # one id on two symbols within the batch
        new = on & (kind >= int(OrderType.LIMIT)) & (kind <= int(OrderType.POST_ONLY))
        rests, found = _look_up(self.resting_orders(), ids[new], ("symbol",))
        return not np.any(rests & (found["symbol"] != sym[new]))

    def _by_symbol(self, cols: dict[str, np.ndarray]) -> Step:
        """Each symbol's rows through its own book (:func:`process_symbols`); rows of no
        symbol are NONE (invalid) or refused here (BAD_KIND, else UNKNOWN_SYMBOL)."""
        n, S = cols["valid"].shape[0], self.n_symbols
        sym = cols["symbol"]
        on = cols["valid"] & (sym >= 0) & (sym < S)
        rows_on = np.flatnonzero(on)
        s_on = sym[rows_on]
        by = np.argsort(s_on, kind="stable")  # by symbol, arrival order kept within each
        rows_on, s_on = rows_on[by], s_on[by]
        counts = np.bincount(s_on, minlength=S)
        k_on = np.arange(len(rows_on)) - np.repeat(np.cumsum(counts) - counts, counts)
        length = _rows(int(counts.max()) if len(counts) else 0)
        grid = {}
        for k in ("valid", "id", "agent", "side", "kind", "price", "qty"):
            g = np.zeros((S, length), _BATCH_DTYPES[k])
            g[s_on, k_on] = cols[k][rows_on]
            grid[k] = g
        self._books, steps = _run_symbols(self._books, Order(**grid), self._tick, stp=int(self.stp))
        steps = jax.tree.map(np.asarray, jax.device_get(steps))
        out = {}
        for f in dataclasses.fields(Step):
            a = getattr(steps, f.name)
            full = np.zeros((n,) + a.shape[2:], a.dtype)
            full[rows_on] = a[s_on, k_on]
            out[f.name] = full
        refused = cols["valid"] & ~on
        kind = cols["kind"]
        out["status"][refused] = int(Status.REJECTED)
        out["reason"][refused] = np.where((kind[refused] < 0) | (kind[refused] > _MODIFY),
                                          int(Reason.BAD_KIND), int(Reason.UNKNOWN_SYMBOL))
        return Step(**out)

    def _updates(self, ids: np.ndarray, s: Step) -> OrderUpdates:
        """The touched ids in order of first touch (an accepted row's own id, then the
        makers it filled or removed, by priority), with their state at the end."""
        accepted = (s.status != int(Status.NONE)) & (s.status != int(Status.REJECTED))
        own_rows = np.flatnonzero(accepted)
        m_row, m_slot = np.nonzero((s.fill_qty > 0) | s.maker_removed)
        seq_row = np.concatenate([own_rows, m_row])
        seq_pos = np.concatenate([np.full(len(own_rows), -1), m_slot])
        seq_id = np.concatenate([ids[own_rows], s.maker_id[m_row, m_slot]])
        order = np.lexsort((seq_pos, seq_row))
        seq_id = seq_id[order]
        _, first = np.unique(seq_id, return_index=True)
        touched = seq_id[np.sort(first)]
        _, found = _look_up(self.resting_orders(), touched, ("qty", "price", "symbol"))
        return OrderUpdates(id=touched.astype(np.int64), remaining=found["qty"], price=found["price"],
                            symbol=found["symbol"])

    # ------------------------------------------------------------------ the whole tick on the device
    @property
    def books(self) -> Book:
        """The books as device arrays (``[S, 2, capacity]``)."""
        return self._books

    def place(self, device) -> None:
        """Commit the books to ``device``, as a jitted call's outputs are: a device tick
        whose first call got books that were not committed (loaded from a snapshot)
        compiled its program a second time on the next call."""
        self._books = jax.device_put(self._books, device)
        self._host = None

    def adopt(self, books: Book, processed: int, fills: int, full: int) -> None:
        """Take ``books`` as they are after a batch matched elsewhere (the device tick's
        match, :func:`match_batch`), and count the batch: ``processed`` valid orders,
        ``fills`` fills, ``full`` orders refused for a full side."""
        if jax.tree.map(jnp.shape, books) != jax.tree.map(jnp.shape, self._books):
            raise ValueError(f"books of shape {books.qty.shape}, this engine has {self._books.qty.shape}")
        self._books, self._host = books, None
        self._n_batches += 1
        self._n_processed += int(processed)
        self._n_fills += int(fills)
        self._n_full += int(full)

    # ------------------------------------------------------------------ reading the books
    def _books_np(self) -> Book:
        if self._host is None:
            self._host = jax.tree.map(np.asarray, jax.device_get(self._books))
        return self._host

    def depth(self, levels: int) -> Depth:
        """Top ``levels`` price levels per side per symbol, best first (``[S, L]``)."""
        b, S, L = self._books_np(), self.n_symbols, int(levels)
        out = {k: np.zeros((S, L), np.int64) for k in ("bid_price", "bid_qty", "ask_price", "ask_qty")}
        for s in range(S):
            for r, p_name, q_name in ((0, "bid_price", "bid_qty"), (1, "ask_price", "ask_qty")):
                live = b.qty[s, r] > 0
                price, qty = b.price[s, r][live], b.qty[s, r][live]
                if not len(price):
                    continue
                start = np.flatnonzero(np.concatenate([[True], price[1:] != price[:-1]]))
                level_qty = np.add.reduceat(qty, start)[:L]  # equal prices sit together
                out[p_name][s, :len(level_qty)] = price[start[:L]]
                out[q_name][s, :len(level_qty)] = level_qty
        return Depth(**out)

    def top_of_book(self) -> TopOfBook:
        """Best price and total size at it per symbol (``[S]``; 0 where a side is empty)."""
        d = self.depth(1)
        return TopOfBook(bid_price=d.bid_price[:, 0], bid_qty=d.bid_qty[:, 0],
                         ask_price=d.ask_price[:, 0], ask_qty=d.ask_qty[:, 0])

    def resting_orders(self) -> dict[str, np.ndarray]:
        """Every live order as columns ``id, agent, symbol, side, price, qty`` (each ``[R]``),
        sorted by symbol, side (BUY first), then priority."""
        b = self._books_np()
        live = b.qty > 0  # [S, 2, C], each row's live slots first, in priority order
        sym, side, _ = np.nonzero(live)
        return {"id": b.id[live].astype(np.int64), "agent": b.agent[live].astype(np.int32),
                "symbol": sym.astype(np.int32), "side": side.astype(np.int8),
                "price": b.price[live].astype(np.int64), "qty": b.qty[live].astype(np.int64)}

    def n_resting(self) -> int:
        """Number of live resting orders."""
        return int((self._books_np().qty > 0).sum())

    def stats(self) -> dict:
        """Counters: batches, valid orders processed, fills, resting orders, price levels,
        orders refused for a full side, and the capacity per side."""
        b = self._books_np()
        live = b.qty > 0
        new_level = live.copy()
        new_level[..., 1:] &= b.price[..., 1:] != b.price[..., :-1]
        return {"engine": self.name, "batches": self._n_batches, "orders_processed": self._n_processed,
                "fills": self._n_fills, "resting": int(live.sum()), "levels": int(new_level.sum()),
                "book_full": self._n_full, "capacity": self.capacity}

    # ------------------------------------------------------------------ save / resume
    def state_dict(self) -> dict:
        """The resting orders in priority order (:meth:`resting_orders`), the counters,
        the capacity, and the tick sizes and STP mode the engine was built with."""
        return {"engine": self.name, "tick_size": self.tick_size.copy(), "stp": int(self.stp),
                "capacity": self.capacity, "orders": self.resting_orders(),
                "n_processed": self._n_processed, "n_fills": self._n_fills,
                "n_batches": self._n_batches, "n_full": self._n_full}

    def load_state_dict(self, d: dict) -> None:
        """Rebuild the books from :meth:`state_dict`, each side in the saved priority
        order. Raises ``ValueError`` (engine unchanged) for another engine, tick sizes or
        STP mode, a malformed or duplicate order, a side out of priority order, or more
        orders on a side than this engine's capacity."""
        check_engine_state(d, self.name, self.tick_size, self.stp)
        cols = d["orders"]
        if set(cols) != set(_RESTING_DTYPES):
            raise ValueError(f"engine state orders: fields {sorted(cols)}, expected {sorted(_RESTING_DTYPES)}")
        c = {k: np.asarray(cols[k]) for k in _RESTING_DTYPES}
        n = len(c["id"])
        if any(v.shape != (n,) for v in c.values()):
            raise ValueError("engine state orders: fields must be 1-D of one length")
        S, C = self.n_symbols, self.capacity
        sym = c["symbol"].astype(np.int64)
        tick = self.tick_size[np.clip(sym, 0, S - 1)]
        bad = (sym < 0) | (sym >= S) | ~np.isin(c["side"], (0, 1)) | (c["qty"] <= 0) | (c["qty"] > MAX_QTY) \
            | (c["price"] <= 0) | (c["price"] > MAX_PRICE) | (c["price"] % tick != 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"engine state: malformed resting order {int(c['id'][i])} (symbol {int(sym[i])}, "
                             f"side {int(c['side'][i])}, price {int(c['price'][i])}, qty {int(c['qty'][i])})")
        ids, counts = np.unique(c["id"], return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"engine state: order id {int(ids[counts > 1][0])} rests twice")
        host = {k: np.zeros((S, 2, C), np.int64) for k in ("price", "qty", "id")}
        host["agent"] = np.zeros((S, 2, C), np.int32)
        for s in range(S):
            for r in (0, 1):
                at = np.flatnonzero((sym == s) & (c["side"] == r))
                if len(at) > C:
                    raise ValueError(f"engine state: {len(at)} orders on symbol {s} side {r}, capacity {C}")
                keys = -c["price"][at] if r == 0 else c["price"][at]
                if np.any(np.diff(keys) < 0):
                    raise ValueError(f"engine state: symbol {s} side {r} is not in priority order")
                for k in ("price", "qty", "id", "agent"):
                    host[k][s, r, :len(at)] = c[k][at]
        self._books = Book(**{k: jnp.asarray(v) for k, v in host.items()})
        self._host = None
        self._n_processed, self._n_fills = int(d["n_processed"]), int(d["n_fills"])
        self._n_batches, self._n_full = int(d["n_batches"]), int(d.get("n_full", 0))
