"""Fast matching engine: a numba kernel over preallocated NumPy arrays.

Same semantics as :mod:`systems.matching.exact` (read its docstring): the same batch
gives the same :class:`MatchResult`, fill for fill. A whole batch is matched in one
compiled call.

Layout (NumPy arrays owned by :class:`FastEngine`; ``C`` order slots, ``L`` level slots,
``K`` levels per book side, ``H`` id-table slots, ``T`` touched-set slots, ``S``
symbols). The pools are record arrays (an order's fields sit together) because the kernel
reaches them at random; the batch and the results stay struct-of-arrays.

* ``orders[C]`` (:data:`ORDER`): id, price, qty, the FIFO links ``prev``/``next`` of its
  level, ``level``, and the batch bookkeeping ``urow``/``uepoch`` (its update row, valid
  when ``uepoch`` is the current batch); free slots form a list through ``next``.
* ``levels[L]`` (:data:`LEVEL`): price, total qty, head and tail order; free levels form
  a list through ``head``.
* ``bk_level[2*symbol + side, K]`` holds level slots ordered worst -> best, so the best
  level is ``bk_level[sb, bk_n[sb] - 1]``: taking it is O(1), inserting near the best
  moves few entries, and any level is found by binary search. ``bk_qty[2*symbol + side]``
  is the total shares resting on that side, kept up to date by every book edit, so an
  order's ``arrival_depth`` costs one load.
* ``ids[H]`` (:data:`ID_ENTRY`): id -> order slot of every live order; open addressing,
  linear probing, backward-shift deletion, ``H`` a power of two, load <= 1/2,
  ``slot == -1`` marks an empty entry.
* ``touched[T]`` (:data:`TOUCH_ENTRY`): id -> update row for the current batch; entries
  whose ``epoch`` is not the current batch's count as empty, so it is never cleared.
  ``u_slot[row]`` is the slot of the row's order while it rests (-1 when not live), so
  the final ``remaining`` needs no lookups.

Arithmetic is int64 and never wraps: the checks refuse a quantity above ``MAX_QTY`` and
a price above ``MAX_PRICE`` (as the exact engine does), so every fill value and
``filled_value`` is at most ``MAX_NOTIONAL`` and the per-level and per-side share totals
at most ``MAX_QTY`` times the resting orders (see the exact engine's "Arithmetic"). Only
the id hash multiplies with wrap-around, on purpose.

Capacity is never exceeded: before a row that may rest (LIMIT, POST_ONLY, MODIFY) the
kernel checks for a free order slot, a free level slot, room on both sides of the
symbol, and id-table load; if anything is short it stops and returns the row index, the
wrapper doubles what is short (counted in :meth:`FastEngine.stats`) and resumes there.
The fill, update and touched buffers are sized per batch from their bounds (fills <=
resting + 2 * rows: each fill either empties a maker, which rested before the batch or
was added in it, or ends its taker; touched ids <= resting + rows), so they never
overflow.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from components.money import MAX_PRICE, MAX_QTY
from components.orders import (
    check_engine_state,
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
    STP,
    TopOfBook,
)

# Enum values as plain ints (numba folds module-level ints into constants).
_BUY = int(Side.BUY)
_SELL = int(Side.SELL)
_LIMIT = int(OrderType.LIMIT)
_MARKET = int(OrderType.MARKET)
_IOC = int(OrderType.IOC)
_POST_ONLY = int(OrderType.POST_ONLY)
_CANCEL = int(OrderType.CANCEL)
_MODIFY = int(OrderType.MODIFY)
_ST_ACCEPTED = int(Status.ACCEPTED)
_ST_PARTIAL = int(Status.PARTIAL)
_ST_FILLED = int(Status.FILLED)
_ST_CANCELLED = int(Status.CANCELLED)
_ST_REJECTED = int(Status.REJECTED)
_R_BAD_KIND = int(Reason.BAD_KIND)
_R_UNKNOWN_SYMBOL = int(Reason.UNKNOWN_SYMBOL)
_R_BAD_SIDE = int(Reason.BAD_SIDE)
_R_BAD_QTY = int(Reason.BAD_QTY)
_R_BAD_PRICE = int(Reason.BAD_PRICE)
_R_OFF_TICK = int(Reason.OFF_TICK)
_R_DUPLICATE_ID = int(Reason.DUPLICATE_ID)
_R_UNKNOWN_ORDER = int(Reason.UNKNOWN_ORDER)
_R_NOT_OWNER = int(Reason.NOT_OWNER)
_R_WOULD_CROSS = int(Reason.WOULD_CROSS)
_R_SELF_TRADE = int(Reason.SELF_TRADE)
_R_NO_LIQUIDITY = int(Reason.NO_LIQUIDITY)
_STP_NONE = int(STP.NONE)
_STP_CANCEL_TAKER = int(STP.CANCEL_TAKER)
_MAX_QTY = int(MAX_QTY)
_MAX_PRICE = int(MAX_PRICE)

ORDER = np.dtype(
    [
        ("id", np.int64),
        ("price", np.int64),  # units
        ("qty", np.int64),  # shares left
        ("prev", np.int64),  # previous order in the level (-1: head)
        ("next", np.int64),  # next order in the level (-1: tail); free-list link
        ("level", np.int64),  # level slot
        ("urow", np.int64),  # update row in the batch of ``uepoch``
        ("uepoch", np.int64),
        ("agent", np.int32),
        ("symbol", np.int32),
        ("side", np.int8),
    ],
    align=True,
)
"""One order-pool slot."""

LEVEL = np.dtype(
    [
        ("price", np.int64),  # units
        ("qty", np.int64),  # total shares resting at this level
        ("head", np.int64),  # first order (earliest); free-list link when free
        ("tail", np.int64),  # last order
    ]
)
"""One price-level slot."""

ID_ENTRY = np.dtype([("key", np.int64), ("slot", np.int64)])
"""Id-table entry: order id -> order slot (-1: empty entry)."""

TOUCH_ENTRY = np.dtype([("key", np.int64), ("epoch", np.int64), ("row", np.int64)])
"""Touched-set entry: order id -> update row, valid in batch ``epoch`` only."""

FILL = np.dtype(
    [
        ("taker_id", np.int64),
        ("maker_id", np.int64),
        ("taker_agent", np.int32),
        ("maker_agent", np.int32),
        ("symbol", np.int32),
        ("side", np.int8),
        ("price", np.int64),
        ("qty", np.int64),
    ]
)
"""Fill buffer row; field names and dtypes are those of :class:`FillBatch`."""

# Engine scalars live in one i64 vector ``meta`` so the kernel can update them in place.
M_FREE_ORDER = 0  # head of the free order-slot list (-1: none)
M_N_ORDERS = 1  # live resting orders
M_FREE_LEVEL = 2  # head of the free level-slot list (-1: none)
M_N_LEVELS = 3  # levels in use
M_N_FILLS = 4  # fills written in the current batch
M_N_UPDATES = 5  # update rows written in the current batch
M_EPOCH = 6  # batch counter (from 1), tags the touched set and ``ORDER.uepoch``
M_NEED = 7  # bit set of what ran short when the kernel stopped early
M_SIZE = 8

NEED_ORDERS = 1
NEED_LEVELS = 2
NEED_SIDE = 4
NEED_IDS = 8

# MurmurHash3's 64-bit finaliser (constants as signed 64-bit ints): every key bit moves
# every low bit, so structured ids (e.g. ``tick << 32 | row``) spread over the table.
_FMIX_1 = -49064778989728563  # 0xFF51AFD7ED558CCD
_FMIX_2 = -4265267296055464877  # 0xC4CEB9FE1A85EC53
_LOW_31 = (1 << 31) - 1  # ``(x >> 33) & _LOW_31`` is a logical shift of a signed int


@njit(cache=True, inline="always")
def _hash(key, mask):
    x = key
    x = (x ^ ((x >> 33) & _LOW_31)) * _FMIX_1  # multiplication wraps
    x = (x ^ ((x >> 33) & _LOW_31)) * _FMIX_2
    x = x ^ ((x >> 33) & _LOW_31)
    return x & mask


# ---------------------------------------------------------------------- id table
@njit(cache=True)
def _id_find(ids, key):
    """Index of ``key`` in the id table, or -1."""
    mask = ids.shape[0] - 1
    i = _hash(key, mask)
    while ids[i].slot != -1:
        if ids[i].key == key:
            return i
        i = (i + 1) & mask
    return -1


@njit(cache=True)
def _id_insert(ids, key, slot):
    mask = ids.shape[0] - 1
    i = _hash(key, mask)
    while ids[i].slot != -1:
        i = (i + 1) & mask
    ids[i].key = key
    ids[i].slot = slot


@njit(cache=True)
def _id_delete(ids, i):
    """Empty entry ``i``, shifting later entries of its probe run back."""
    mask = ids.shape[0] - 1
    j = i
    while True:
        j = (j + 1) & mask
        if ids[j].slot == -1:
            break
        k = _hash(ids[j].key, mask)
        # The entry at j may stay if its home k lies cyclically in (i, j].
        if i <= j:
            if i < k and k <= j:
                continue
        elif k > i or k <= j:
            continue
        ids[i].key = ids[j].key
        ids[i].slot = ids[j].slot
        i = j
    ids[i].slot = -1


@njit(cache=True)
def _id_rehash(old, new):
    new.slot[:] = -1
    for i in range(old.shape[0]):
        if old[i].slot != -1:
            _id_insert(new, old[i].key, old[i].slot)


# ---------------------------------------------------------------------- updates
@njit(cache=True)
def _touch_id(key, touched, epoch, u_id, u_slot, meta):
    """Update row of ``key`` in this batch, adding a row (not live: slot -1) on first touch."""
    mask = touched.shape[0] - 1
    i = _hash(key, mask)
    while touched[i].epoch == epoch:
        if touched[i].key == key:
            return touched[i].row
        i = (i + 1) & mask
    row = meta[M_N_UPDATES]
    meta[M_N_UPDATES] = row + 1
    touched[i].key = key
    touched[i].epoch = epoch
    touched[i].row = row
    u_id[row] = key
    u_slot[row] = -1
    return row


@njit(cache=True)
def _touch_live(s, orders, touched, epoch, u_id, u_slot, meta):
    """Touch the live order in slot ``s`` (a maker, or a CANCEL/MODIFY target)."""
    o = orders[s]
    if o.uepoch != epoch:
        row = _touch_id(o.id, touched, epoch, u_id, u_slot, meta)
        o.uepoch = epoch
        o.urow = row
        u_slot[row] = s


# ---------------------------------------------------------------------- book edits
@njit(cache=True)
def _level_pos(bk_level, sb, n, levels, is_bid, price):
    """First position in ``bk_level[sb, :n]`` whose level is not worse than ``price``.

    Sort key is ``price`` on the bid side and ``-price`` on the ask side (ascending).
    """
    key = price if is_bid else -price
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        p = levels[bk_level[sb, mid]].price
        if (p if is_bid else -p) < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _free_order(s, id_index, orders, ids, u_slot, meta):
    """Return slot ``s`` (already out of its level; touched in this batch) to the pool and
    forget its id (``id_index``: its id-table entry, or -1 to look it up)."""
    if id_index < 0:
        id_index = _id_find(ids, orders[s].id)
    _id_delete(ids, id_index)
    u_slot[orders[s].urow] = -1
    orders[s].next = meta[M_FREE_ORDER]
    meta[M_FREE_ORDER] = s
    meta[M_N_ORDERS] -= 1


@njit(cache=True)
def _free_level(lv, levels, meta):
    levels[lv].head = meta[M_FREE_LEVEL]
    meta[M_FREE_LEVEL] = lv
    meta[M_N_LEVELS] -= 1


@njit(cache=True)
def _unlink(s, orders, levels, bk_level, bk_n, bk_qty, meta):
    """Take the resting order in slot ``s`` out of its level (dropping an emptied level)."""
    o = orders[s]
    sb = 2 * o.symbol + o.side
    bk_qty[sb] -= o.qty
    lv = o.level
    lev = levels[lv]
    if o.prev != -1:
        orders[o.prev].next = o.next
    else:
        lev.head = o.next
    if o.next != -1:
        orders[o.next].prev = o.prev
    else:
        lev.tail = o.prev
    lev.qty -= o.qty
    if lev.head == -1:
        n = bk_n[sb]
        if bk_level[sb, n - 1] == lv:
            pos = n - 1
        else:
            pos = _level_pos(bk_level, sb, n, levels, o.side == _BUY, lev.price)
        for j in range(pos, n - 1):
            bk_level[sb, j] = bk_level[sb, j + 1]
        bk_n[sb] = n - 1
        _free_level(lv, levels, meta)


@njit(cache=True)
def _rest(s, price, qty, orders, levels, bk_level, bk_n, bk_qty, meta):
    """Append the order in slot ``s`` (symbol and side set) at the back of its level."""
    o = orders[s]
    sb = 2 * o.symbol + o.side
    bk_qty[sb] += qty
    n = bk_n[sb]
    if n > 0 and levels[bk_level[sb, n - 1]].price == price:
        lv = bk_level[sb, n - 1]  # joins the best level: the common case
    else:
        pos = _level_pos(bk_level, sb, n, levels, o.side == _BUY, price)
        if pos < n and levels[bk_level[sb, pos]].price == price:
            lv = bk_level[sb, pos]
        else:
            lv = meta[M_FREE_LEVEL]
            meta[M_FREE_LEVEL] = levels[lv].head
            meta[M_N_LEVELS] += 1
            levels[lv].price = price
            levels[lv].qty = 0
            levels[lv].head = -1
            levels[lv].tail = -1
            for j in range(n, pos, -1):
                bk_level[sb, j] = bk_level[sb, j - 1]
            bk_level[sb, pos] = lv
            bk_n[sb] = n + 1
    lev = levels[lv]
    o.price = price
    o.qty = qty
    o.level = lv
    o.prev = lev.tail
    o.next = -1
    if lev.tail != -1:
        orders[lev.tail].next = s
    else:
        lev.head = s
    lev.tail = s
    lev.qty += qty


@njit(cache=True)
def _match(taker_id, agent, sym, side, limited, price, qty, stp,
           orders, levels, bk_level, bk_n, bk_qty, ids, touched, u_id, u_slot, fills, meta):
    """Fill a taker against the opposite side; return (shares filled, their notional sum
    of price * qty, dropped by STP)."""
    sb = 2 * sym + (1 - side)
    epoch = meta[M_EPOCH]
    n = bk_n[sb]
    left = qty
    value = 0
    removed = 0  # shares that left the side: fills and CANCEL_MAKER victims
    dropped = False
    nf = meta[M_N_FILLS]
    while left > 0 and n > 0:
        lv = bk_level[sb, n - 1]
        lev = levels[lv]
        lp = lev.price
        if limited:
            if side == _BUY:
                if lp > price:
                    break
            elif lp < price:
                break
        m = lev.head
        while m != -1 and left > 0:
            mk = orders[m]
            if stp != _STP_NONE and mk.agent == agent:
                if stp == _STP_CANCEL_TAKER:
                    dropped = True
                    break
                # CANCEL_MAKER: the maker leaves the book, no fill.
                _touch_live(m, orders, touched, epoch, u_id, u_slot, meta)
                nxt = mk.next
                lev.qty -= mk.qty
                removed += mk.qty
                _free_order(m, -1, orders, ids, u_slot, meta)
                m = nxt
                continue
            _touch_live(m, orders, touched, epoch, u_id, u_slot, meta)
            mq = mk.qty
            q = left if left < mq else mq
            f = fills[nf]
            f.taker_id = taker_id
            f.maker_id = mk.id
            f.taker_agent = agent
            f.maker_agent = mk.agent
            f.symbol = sym
            f.side = side
            f.price = lp
            f.qty = q
            nf += 1
            left -= q
            value += lp * q
            lev.qty -= q
            if q == mq:
                nxt = mk.next
                _free_order(m, -1, orders, ids, u_slot, meta)
                m = nxt
            else:
                mk.qty = mq - q
        if m == -1:  # level emptied: it was the best, so it is the last entry
            lev.tail = -1
            _free_level(lv, levels, meta)
            n -= 1
        else:
            lev.head = m
            orders[m].prev = -1
        if dropped:
            break
    bk_n[sb] = n
    bk_qty[sb] -= removed + (qty - left)
    meta[M_N_FILLS] = nf
    return qty - left, value, dropped


@njit(cache=True)
def _process_kernel(
    start,
    b_valid, b_id, b_agent, b_symbol, b_side, b_kind, b_price, b_qty,
    tick, stp,
    orders, levels, bk_level, bk_n, bk_qty, ids, touched,
    out_status, out_reason, out_filled, out_resting,
    out_value, out_bid, out_ask, out_depth,
    fills, u_id, u_slot, u_remaining, u_price, u_symbol,
    meta,
):
    """Process batch rows ``start..B-1``; return ``B`` when done, or the row at which it
    stopped because ``meta[M_NEED]`` names a capacity to grow first."""
    n_rows = b_valid.shape[0]
    n_sym = tick.shape[0]
    cap_orders = orders.shape[0]
    cap_levels = levels.shape[0]
    cap_side = bk_level.shape[1]
    cap_ids = ids.shape[0]
    epoch = meta[M_EPOCH]
    for i in range(start, n_rows):
        if not b_valid[i]:
            continue
        kind = b_kind[i]
        sym = b_symbol[i]
        side = b_side[i]
        qty = b_qty[i]
        price = b_price[i]
        oid = b_id[i]
        agent = b_agent[i]

        # Room first: a row that may rest needs an order slot, a level, side room and
        # id-table load (MODIFY needs less; asking the same keeps the rule simple).
        if kind == _LIMIT or kind == _POST_ONLY or kind == _MODIFY:
            need = 0
            if meta[M_N_ORDERS] >= cap_orders:
                need |= NEED_ORDERS
            if meta[M_N_LEVELS] >= cap_levels:
                need |= NEED_LEVELS
            if 2 * (meta[M_N_ORDERS] + 1) > cap_ids:
                need |= NEED_IDS
            if 0 <= sym < n_sym and (bk_n[2 * sym] >= cap_side or bk_n[2 * sym + 1] >= cap_side):
                need |= NEED_SIDE
            if need:
                meta[M_NEED] = need
                return i

        # Checks, in contract order.
        reason = 0
        slot = -1
        hi = -1
        is_new = kind == _LIMIT or kind == _MARKET or kind == _IOC or kind == _POST_ONLY
        priced = kind == _LIMIT or kind == _IOC or kind == _POST_ONLY or kind == _MODIFY
        if kind < 0 or kind > _MODIFY:
            reason = _R_BAD_KIND
        elif sym < 0 or sym >= n_sym:
            reason = _R_UNKNOWN_SYMBOL
        elif is_new and side != _BUY and side != _SELL:
            reason = _R_BAD_SIDE
        elif kind != _CANCEL and (qty <= 0 or qty > _MAX_QTY):
            reason = _R_BAD_QTY
        elif priced and (price <= 0 or price > _MAX_PRICE):
            reason = _R_BAD_PRICE
        elif priced and price % tick[sym] != 0:
            reason = _R_OFF_TICK
        else:
            hi = _id_find(ids, oid)
            if is_new:
                if hi >= 0:
                    reason = _R_DUPLICATE_ID
                elif kind == _POST_ONLY:
                    osb = 2 * sym + (1 - side)
                    on = bk_n[osb]
                    if on > 0:
                        best = levels[bk_level[osb, on - 1]].price
                        if (best <= price) if side == _BUY else (best >= price):
                            reason = _R_WOULD_CROSS
            elif hi < 0:
                reason = _R_UNKNOWN_ORDER
            else:
                slot = ids[hi].slot
                if orders[slot].symbol != sym:
                    reason = _R_UNKNOWN_ORDER
                elif orders[slot].agent != agent:
                    reason = _R_NOT_OWNER
        if reason != 0:
            out_status[i] = _ST_REJECTED
            out_reason[i] = reason
            continue

        # The book on arrival: best prices and the depth of the side it takes from.
        bsb = 2 * sym + _BUY
        asb = 2 * sym + _SELL
        if bk_n[bsb] > 0:
            out_bid[i] = levels[bk_level[bsb, bk_n[bsb] - 1]].price
        if bk_n[asb] > 0:
            out_ask[i] = levels[bk_level[asb, bk_n[asb] - 1]].price
        if kind == _MODIFY:
            out_depth[i] = bk_qty[2 * sym + 1 - orders[slot].side]
        elif kind != _CANCEL:
            out_depth[i] = bk_qty[2 * sym + 1 - side]

        if kind == _CANCEL:
            _touch_live(slot, orders, touched, epoch, u_id, u_slot, meta)
            _unlink(slot, orders, levels, bk_level, bk_n, bk_qty, meta)
            _free_order(slot, hi, orders, ids, u_slot, meta)
            out_status[i] = _ST_ACCEPTED
            continue
        if kind == _MODIFY:
            _touch_live(slot, orders, touched, epoch, u_id, u_slot, meta)
            o = orders[slot]
            if price == o.price:
                lev = levels[o.level]
                if qty > o.qty and lev.tail != slot:
                    # Size up: to the back of the level (not the tail, so next != -1).
                    if o.prev != -1:
                        orders[o.prev].next = o.next
                    else:
                        lev.head = o.next
                    orders[o.next].prev = o.prev
                    orders[lev.tail].next = slot
                    o.prev = lev.tail
                    o.next = -1
                    lev.tail = slot
                lev.qty += qty - o.qty
                bk_qty[2 * o.symbol + o.side] += qty - o.qty
                o.qty = qty
                out_status[i] = _ST_ACCEPTED
                out_resting[i] = qty
                continue
            # New price: out of the book, then in again like a LIMIT order (same slot).
            _unlink(slot, orders, levels, bk_level, bk_n, bk_qty, meta)
            side = o.side
            row = o.urow
        else:
            row = _touch_id(oid, touched, epoch, u_id, u_slot, meta)

        got = 0
        value = 0
        dropped = False
        if kind != _POST_ONLY:  # a POST_ONLY that got here does not cross
            got, value, dropped = _match(
                oid, agent, sym, side, kind != _MARKET, price, qty, stp,
                orders, levels, bk_level, bk_n, bk_qty, ids, touched, u_id, u_slot, fills, meta,
            )
        left = qty - got
        rests = left > 0 and not dropped and (kind == _LIMIT or kind == _POST_ONLY or kind == _MODIFY)
        if kind == _MODIFY:
            if rests:
                _rest(slot, price, left, orders, levels, bk_level, bk_n, bk_qty, meta)
            else:
                _free_order(slot, -1, orders, ids, u_slot, meta)
        elif rests:
            slot = meta[M_FREE_ORDER]
            o = orders[slot]
            meta[M_FREE_ORDER] = o.next
            meta[M_N_ORDERS] += 1
            o.id = oid
            o.agent = agent
            o.symbol = sym
            o.side = side
            o.urow = row
            o.uepoch = epoch
            u_slot[row] = slot
            _id_insert(ids, oid, slot)
            _rest(slot, price, left, orders, levels, bk_level, bk_n, bk_qty, meta)
        out_filled[i] = got
        out_value[i] = value
        if rests:
            out_resting[i] = left
        if left == 0:
            out_status[i] = _ST_FILLED
        else:
            if got > 0:
                out_status[i] = _ST_PARTIAL
            elif rests:
                out_status[i] = _ST_ACCEPTED
            else:
                out_status[i] = _ST_CANCELLED
            if not rests:
                out_reason[i] = _R_SELF_TRADE if dropped else _R_NO_LIQUIDITY

    # Final remaining, price and symbol of every touched id (0 when gone).
    for u in range(meta[M_N_UPDATES]):
        s = u_slot[u]
        if s >= 0:
            u_remaining[u] = orders[s].qty
            u_price[u] = orders[s].price
            u_symbol[u] = orders[s].symbol
        else:
            u_remaining[u] = 0
            u_price[u] = 0
            u_symbol[u] = 0
    meta[M_NEED] = 0
    return n_rows


@njit(cache=True)
def _depth_kernel(bk_level, bk_n, levels, bid_price, bid_qty, ask_price, ask_qty):
    """Fill ``[S, L]`` depth arrays (pre-zeroed), best level first."""
    n_sym, n_lv = bid_price.shape
    for s in range(n_sym):
        for side in range(2):
            sb = 2 * s + side
            n = bk_n[sb]
            for j in range(min(n, n_lv)):
                lev = levels[bk_level[sb, n - 1 - j]]
                if side == _BUY:
                    bid_price[s, j] = lev.price
                    bid_qty[s, j] = lev.qty
                else:
                    ask_price[s, j] = lev.price
                    ask_qty[s, j] = lev.qty


@njit(cache=True)
def _resting_kernel(bk_level, bk_n, levels, orders, r_id, r_agent, r_symbol, r_side, r_price, r_qty):
    """Write every live order, by symbol, side, then priority; return the count (-1 if
    the levels link more orders than the outputs hold: a corrupted book)."""
    k = 0
    cap = r_id.shape[0]
    for sb in range(bk_n.shape[0]):
        for j in range(bk_n[sb] - 1, -1, -1):
            m = levels[bk_level[sb, j]].head
            while m != -1:
                if k == cap:
                    return -1
                o = orders[m]
                r_id[k] = o.id
                r_agent[k] = o.agent
                r_symbol[k] = o.symbol
                r_side[k] = o.side
                r_price[k] = o.price
                r_qty[k] = o.qty
                k += 1
                m = o.next
    return k


def _pow2_at_least(n: int) -> int:
    return 1 << max(int(n) - 1, 1).bit_length()


def _host(x, dtype) -> np.ndarray:
    """A writeable, contiguous NumPy array of ``dtype`` (one compiled signature only)."""
    a = np.asarray(x, dtype=dtype)
    if not (a.flags.writeable and a.flags.c_contiguous):
        a = np.array(a, dtype=dtype)
    return a


def _grown(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` copied into the front of a zeroed array of length ``n``."""
    b = np.zeros(n, a.dtype)
    b[: a.shape[0]] = a
    return b


class FastEngine:
    """Array-backed matching engine; identical results to :class:`ExactEngine`.

    Args:
        tick_size: array-like i64[S], each symbol's tick size in units (> 0).
        stp: self-trade prevention mode (:class:`STP`).
        order_capacity: initial order slots ``C`` (doubles on demand). The id table starts
            at ``2 * C`` entries: small tables stay in cache (the kernel probes the id table
            at random several times per order), and the books at seed_100k rest ~500
            orders, so the default grows at most a few times, early in a run.
        level_capacity: initial price-level slots ``L`` (doubles on demand).
        side_capacity: initial levels per book side ``K`` (doubles on demand).
    """

    name = "fast"

    def __init__(
        self,
        tick_size,
        stp: int = STP.NONE,
        *,
        order_capacity: int = 1 << 10,
        level_capacity: int = 1 << 10,
        side_capacity: int = 64,
    ):
        tick = np.atleast_1d(np.asarray(tick_size, dtype=np.int64))
        if tick.ndim != 1 or tick.shape[0] == 0 or np.any(tick <= 0):
            raise ValueError(f"tick_size must be a non-empty 1-D array of positive ints, got {tick_size!r}")
        if min(order_capacity, level_capacity, side_capacity) < 1:
            raise ValueError("capacities must be >= 1")
        self.tick_size = np.array(tick)
        self.n_symbols = int(tick.shape[0])
        self.stp = STP(int(stp))
        self._meta = np.zeros(M_SIZE, np.int64)
        self._meta[M_FREE_ORDER] = -1
        self._meta[M_FREE_LEVEL] = -1
        self._orders = np.zeros(0, ORDER)
        self._grow_orders(int(order_capacity))
        self._levels = np.zeros(0, LEVEL)
        self._grow_levels(int(level_capacity))
        self._bk_level = np.zeros((2 * self.n_symbols, int(side_capacity)), np.int64)
        self._bk_n = np.zeros(2 * self.n_symbols, np.int64)
        self._bk_qty = np.zeros(2 * self.n_symbols, np.int64)  # shares per book side
        self._ids = np.zeros(_pow2_at_least(2 * int(order_capacity)), ID_ENTRY)
        self._ids["slot"] = -1
        self._touched = np.zeros(0, TOUCH_ENTRY)  # epochs start at 1: zeros are empty
        self._fills = np.zeros(0, FILL)
        self._u_id = np.zeros(0, np.int64)
        self._u_slot = np.zeros(0, np.int64)
        self._u_remaining = np.zeros(0, np.int64)
        self._u_price = np.zeros(0, np.int64)
        self._u_symbol = np.zeros(0, np.int32)
        self._grows = {"orders": 0, "levels": 0, "side": 0, "ids": 0}
        self._n_processed = 0
        self._n_fills = 0

    # ------------------------------------------------------------------ capacity
    def _grow_orders(self, new_cap: int) -> None:
        old = self._orders.shape[0]
        self._orders = _grown(self._orders, new_cap)
        # New slots join the front of the free list.
        self._orders["next"][old : new_cap - 1] = np.arange(old + 1, new_cap)
        self._orders["next"][new_cap - 1] = self._meta[M_FREE_ORDER]
        self._meta[M_FREE_ORDER] = old

    def _grow_levels(self, new_cap: int) -> None:
        old = self._levels.shape[0]
        self._levels = _grown(self._levels, new_cap)
        self._levels["head"][old : new_cap - 1] = np.arange(old + 1, new_cap)
        self._levels["head"][new_cap - 1] = self._meta[M_FREE_LEVEL]
        self._meta[M_FREE_LEVEL] = old

    def _grow(self, need: int) -> None:
        """Double every capacity named in the ``need`` bit set."""
        if need & NEED_ORDERS:
            self._grow_orders(2 * self._orders.shape[0])
            self._grows["orders"] += 1
        if need & NEED_LEVELS:
            self._grow_levels(2 * self._levels.shape[0])
            self._grows["levels"] += 1
        if need & NEED_SIDE:
            old = self._bk_level
            self._bk_level = np.zeros((old.shape[0], 2 * old.shape[1]), np.int64)
            self._bk_level[:, : old.shape[1]] = old
            self._grows["side"] += 1
        if need & NEED_IDS:
            new = np.zeros(2 * self._ids.shape[0], ID_ENTRY)
            _id_rehash(self._ids, new)
            self._ids = new
            self._grows["ids"] += 1

    def _reserve_outputs(self, n_rows: int) -> None:
        """Size per-batch buffers from their bounds (fills <= R + 2B, updates <= R + B)."""
        resting = int(self._meta[M_N_ORDERS])
        n_fill = resting + 2 * n_rows
        if self._fills.shape[0] < n_fill:
            self._fills = np.empty(_pow2_at_least(n_fill), FILL)
        n_upd = resting + n_rows
        if self._u_id.shape[0] < n_upd:
            cap = _pow2_at_least(n_upd)
            self._u_id = np.empty(cap, np.int64)
            self._u_slot = np.empty(cap, np.int64)
            self._u_remaining = np.empty(cap, np.int64)
            self._u_price = np.empty(cap, np.int64)
            self._u_symbol = np.empty(cap, np.int32)
        if self._touched.shape[0] < 2 * n_upd:
            self._touched = np.zeros(_pow2_at_least(2 * n_upd), TOUCH_ENTRY)

    # ------------------------------------------------------------------ processing
    def process(self, batch: OrderBatch) -> MatchResult:
        """Match one batch of orders, rows in array order (see :meth:`ExactEngine.process`).

        Args:
            batch: OrderBatch of ``B`` rows.
        Returns:
            MatchResult with outcomes ``[B]``, fills ``[F]`` and updates ``[U]``; fresh
            arrays (nothing aliases engine state).
        """
        valid = _host(batch.valid, np.bool_)
        n = valid.shape[0]
        b_id = _host(batch.id, np.int64)
        b_agent = _host(batch.agent, np.int32)
        b_symbol = _host(batch.symbol, np.int32)
        b_side = _host(batch.side, np.int8)
        b_kind = _host(batch.kind, np.int8)
        b_price = _host(batch.price, np.int64)
        b_qty = _host(batch.qty, np.int64)
        if any(a.shape != (n,) for a in (b_id, b_agent, b_symbol, b_side, b_kind, b_price, b_qty)):
            raise ValueError("OrderBatch fields must all be 1-D of the same length")
        self._reserve_outputs(n)
        meta = self._meta
        meta[M_EPOCH] += 1
        meta[M_N_FILLS] = 0
        meta[M_N_UPDATES] = 0
        status = np.zeros(n, np.int8)
        reason = np.zeros(n, np.int8)
        filled = np.zeros(n, np.int64)
        resting = np.zeros(n, np.int64)
        value = np.zeros(n, np.int64)
        arrival_bid = np.zeros(n, np.int64)
        arrival_ask = np.zeros(n, np.int64)
        arrival_depth = np.zeros(n, np.int64)
        stp = int(self.stp)
        row = 0
        while True:
            row = _process_kernel(
                row,
                valid, b_id, b_agent, b_symbol, b_side, b_kind, b_price, b_qty,
                self.tick_size, stp,
                self._orders, self._levels, self._bk_level, self._bk_n, self._bk_qty,
                self._ids, self._touched,
                status, reason, filled, resting,
                value, arrival_bid, arrival_ask, arrival_depth,
                self._fills, self._u_id, self._u_slot, self._u_remaining,
                self._u_price, self._u_symbol,
                meta,
            )
            if row >= n:
                break
            self._grow(int(meta[M_NEED]))
        nf = int(meta[M_N_FILLS])
        nu = int(meta[M_N_UPDATES])
        self._n_processed += int(np.count_nonzero(valid))
        self._n_fills += nf
        fills = self._fills[:nf]
        return MatchResult(
            outcomes=Outcomes(
                status=status, reason=reason, filled=filled, resting=resting,
                filled_value=value, arrival_bid=arrival_bid, arrival_ask=arrival_ask,
                arrival_depth=arrival_depth,
            ),
            fills=FillBatch(**{k: np.ascontiguousarray(fills[k]) for k in FILL.names}),
            updates=OrderUpdates(
                id=self._u_id[:nu].copy(),
                remaining=self._u_remaining[:nu].copy(),
                price=self._u_price[:nu].copy(),
                symbol=self._u_symbol[:nu].copy(),
            ),
        )

    # ------------------------------------------------------------------ views
    def top_of_book(self) -> TopOfBook:
        """Best price and total size at it per symbol (``[S]``; 0 where a side is empty)."""
        d = self.depth(1)
        return TopOfBook(
            bid_price=d.bid_price[:, 0], bid_qty=d.bid_qty[:, 0],
            ask_price=d.ask_price[:, 0], ask_qty=d.ask_qty[:, 0],
        )

    def depth(self, levels: int) -> Depth:
        """Top ``levels`` price levels per side per symbol, best first (``[S, L]``)."""
        shape = (self.n_symbols, int(levels))
        out = Depth(
            bid_price=np.zeros(shape, np.int64), bid_qty=np.zeros(shape, np.int64),
            ask_price=np.zeros(shape, np.int64), ask_qty=np.zeros(shape, np.int64),
        )
        _depth_kernel(self._bk_level, self._bk_n, self._levels,
                      out.bid_price, out.bid_qty, out.ask_price, out.ask_qty)
        return out

    def resting_orders(self) -> dict[str, np.ndarray]:
        """Every live order as columns ``id, agent, symbol, side, price, qty`` (each ``[R]``),
        sorted by symbol, side (BUY first), then priority (best price, then earliest)."""
        r = int(self._meta[M_N_ORDERS])
        out = {
            "id": np.zeros(r, np.int64), "agent": np.zeros(r, np.int32),
            "symbol": np.zeros(r, np.int32), "side": np.zeros(r, np.int8),
            "price": np.zeros(r, np.int64), "qty": np.zeros(r, np.int64),
        }
        k = _resting_kernel(self._bk_level, self._bk_n, self._levels, self._orders,
                            out["id"], out["agent"], out["symbol"], out["side"],
                            out["price"], out["qty"])
        if k != r:
            raise RuntimeError(f"order pool holds {r} live orders but the book links {'more' if k < 0 else k}")
        return out

    def n_resting(self) -> int:
        """Number of live resting orders."""
        return int(self._meta[M_N_ORDERS])

    # ------------------------------------------------------------------ save / resume
    def state_dict(self) -> dict:
        """Everything that defines the books, as copies: the order pool (one array per
        :data:`ORDER` field, ``[C]``, free slots included, so the free list and every
        slot number survive), the level pool (per :data:`LEVEL` field, ``[L]``), the
        per-side level lists ``bk_level [2S, K]``, ``bk_n``/``bk_qty [2S]``, the id table
        (per :data:`ID_ENTRY` field, ``[H]``), ``meta`` (free-list heads, counts, the
        batch epoch), the growth and run counters, and the tick sizes and STP mode it was
        built with. Per-batch scratch buffers (fills, updates, the touched set) are not
        state: entries of earlier batches count as empty. :meth:`load_state_dict` of a
        fresh engine then matches every later batch exactly as this one would."""
        return {
            "engine": self.name,
            "tick_size": self.tick_size.copy(),
            "stp": int(self.stp),
            "meta": self._meta.copy(),
            "orders": {f: self._orders[f].copy() for f in ORDER.names},
            "levels": {f: self._levels[f].copy() for f in LEVEL.names},
            "bk_level": self._bk_level.copy(),
            "bk_n": self._bk_n.copy(),
            "bk_qty": self._bk_qty.copy(),
            "ids": {f: self._ids[f].copy() for f in ID_ENTRY.names},
            "grows": dict(self._grows),
            "n_processed": int(self._n_processed),
            "n_fills": int(self._n_fills),
        }

    def load_state_dict(self, d: dict) -> None:
        """Restore what :meth:`state_dict` returned (arrays are copied). Raises
        ``ValueError`` naming the field when ``d`` belongs to another engine, other tick
        sizes or STP mode, or its arrays do not fit together; the engine is unchanged
        then."""
        check_engine_state(d, self.name, self.tick_size, self.stp)

        def table(name: str, dtype: np.dtype) -> np.ndarray:
            cols = d[name]
            if set(cols) != set(dtype.names):
                raise ValueError(f"engine state {name}: fields {sorted(cols)}, expected {sorted(dtype.names)}")
            n = {np.shape(cols[f]) for f in dtype.names}
            if len(n) != 1 or len(next(iter(n))) != 1:
                raise ValueError(f"engine state {name}: fields must be 1-D of one length, got shapes {sorted(n)}")
            out = np.zeros(next(iter(n))[0], dtype)
            for f in dtype.names:
                out[f] = np.asarray(cols[f])
            return out

        sides = 2 * self.n_symbols
        meta = np.array(d["meta"], np.int64)
        orders, levels, ids = table("orders", ORDER), table("levels", LEVEL), table("ids", ID_ENTRY)
        bk_level = np.array(d["bk_level"], np.int64)
        bk_n = np.array(d["bk_n"], np.int64)
        bk_qty = np.array(d["bk_qty"], np.int64)
        if meta.shape != (M_SIZE,):
            raise ValueError(f"engine state meta: shape {meta.shape}, expected ({M_SIZE},)")
        if bk_level.ndim != 2 or bk_level.shape[0] != sides or bk_n.shape != (sides,) or bk_qty.shape != (sides,):
            raise ValueError(f"engine state book sides: shapes {bk_level.shape}, {bk_n.shape}, {bk_qty.shape} "
                             f"for {self.n_symbols} symbols")
        h = ids.shape[0]
        if h < 2 or h & (h - 1) or orders.shape[0] < 1 or levels.shape[0] < 1 or bk_level.shape[1] < 1:
            raise ValueError("engine state: empty pools or an id table whose size is not a power of two")
        if np.any(bk_n < 0) or np.any(bk_n > bk_level.shape[1]) or int(meta[M_N_ORDERS]) > orders.shape[0]:
            raise ValueError("engine state: counts exceed the capacities")
        # The kernels do not check bounds: every link must point inside its pool.
        c, n_lv = orders.shape[0], levels.shape[0]
        used = np.arange(bk_level.shape[1])[None, :] < bk_n[:, None]
        links = (
            (bk_level[used], n_lv),
            (orders["next"], c), (orders["prev"], c), (orders["level"], n_lv), (ids["slot"], c),
            (meta[[M_FREE_ORDER]], c), (meta[[M_FREE_LEVEL]], n_lv),
        )
        bad = any(np.any((a < -1) | (a >= hi)) for a, hi in links) or np.any(bk_level[used] < 0)
        if not bad:  # levels in use link orders; free levels link levels
            live = levels[bk_level[used]]
            bad = any(np.any((live[f] < -1) | (live[f] >= c)) for f in ("head", "tail"))
        if bad:
            raise ValueError("engine state: a link points outside its pool")
        previous = (self._meta, self._orders, self._levels, self._bk_level, self._bk_n, self._bk_qty, self._ids)
        self._meta, self._orders, self._levels = meta, orders, levels
        self._bk_level, self._bk_n, self._bk_qty, self._ids = bk_level, bk_n, bk_qty, ids
        try:
            live = self.resting_orders()  # the levels must link exactly the live orders
            problem = None
        except (RuntimeError, IndexError) as e:
            problem = f"the books do not link up ({e})"
        if problem is None:  # every resting order within the bounds the checks keep
            qty, price = live["qty"], live["price"]
            bad = np.flatnonzero((qty <= 0) | (qty > MAX_QTY) | (price <= 0) | (price > MAX_PRICE))
            if bad.size:
                i = int(bad[0])
                problem = (f"resting order {int(live['id'][i])} (price {int(price[i])}, qty {int(qty[i])}) "
                           f"is beyond the order bounds (MAX_PRICE {MAX_PRICE}, MAX_QTY {MAX_QTY})")
        if problem is not None:
            (self._meta, self._orders, self._levels, self._bk_level, self._bk_n, self._bk_qty,
             self._ids) = previous
            raise ValueError(f"engine state: {problem}")
        self._grows = {k: int(v) for k, v in d["grows"].items()}
        self._n_processed = int(d["n_processed"])
        self._n_fills = int(d["n_fills"])
        # Scratch buffers are sized per batch on demand; a zeroed touched set is empty.
        self._touched = np.zeros(0, TOUCH_ENTRY)
        self._fills = np.zeros(0, FILL)
        for name, dt in (("_u_id", np.int64), ("_u_slot", np.int64), ("_u_remaining", np.int64),
                         ("_u_price", np.int64), ("_u_symbol", np.int32)):
            setattr(self, name, np.zeros(0, dt))

    def stats(self) -> dict:
        """Counters and capacities: batches, orders processed, fills, resting orders, levels,
        current capacities and how many times each one doubled (``grows``)."""
        return {
            "engine": self.name,
            "batches": int(self._meta[M_EPOCH]),
            "orders_processed": self._n_processed,
            "fills": self._n_fills,
            "resting": int(self._meta[M_N_ORDERS]),
            "levels": int(self._meta[M_N_LEVELS]),
            "capacity": {
                "orders": int(self._orders.shape[0]),
                "levels": int(self._levels.shape[0]),
                "side": int(self._bk_level.shape[1]),
                "ids": int(self._ids.shape[0]),
            },
            "grows": dict(self._grows),
        }
