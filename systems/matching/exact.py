"""Exact matching engine: the readable reference that defines the matching semantics.

One limit order book per symbol. Each side is a ``sortedcontainers.SortedDict`` from a
sort key to a ``collections.deque`` of resting orders (FIFO = time priority within a
price level); a dict maps each live order id to its order. Nothing is bounded but an
order's size and price (below).

The contract is in :mod:`components.orders`. This module fixes the details that the
contract leaves open; the fast engine and the test reference follow them exactly:

Checks (first failing check wins; a rejected row changes nothing and touches nothing)
    kind in OrderType -> ``BAD_KIND``; ``0 <= symbol < n_symbols`` -> ``UNKNOWN_SYMBOL``;
    new orders only: side in Side -> ``BAD_SIDE``; all but CANCEL: ``0 < qty <= MAX_QTY``
    -> ``BAD_QTY``; LIMIT, IOC, POST_ONLY, MODIFY: ``0 < price <= MAX_PRICE`` ->
    ``BAD_PRICE`` and ``price % tick_size[symbol] == 0`` -> ``OFF_TICK``; then the id: a
    new order whose id is live anywhere (any symbol) -> ``DUPLICATE_ID``; a CANCEL/MODIFY
    whose id is not live, or is live on another symbol -> ``UNKNOWN_ORDER``; live on this
    symbol but owned by another agent -> ``NOT_OWNER``. Last, POST_ONLY whose price
    crosses the best opposite price (own orders included, whatever the STP mode) ->
    ``WOULD_CROSS``.

Matching (LIMIT, MARKET, IOC, and a MODIFY that changes the price)
    The taker meets the best opposite level while it crosses (MARKET: always), makers in
    FIFO order, each fill at the maker's price for ``min(taker left, maker left)``.
    Self-trade prevention applies when the next maker in priority has the taker's agent:
    ``CANCEL_TAKER`` stops matching and drops the taker's remainder; ``CANCEL_MAKER``
    removes that maker (no fill) and goes on; ``NONE`` fills as usual.

Outcome of a row (``filled``/``resting`` are shares of this row's order)
    * valid == False: ``NONE``, reason ``NONE``, zeros.
    * rejected: ``REJECTED`` with the reason, ``filled = resting = 0``.
    * LIMIT / MARKET / IOC / POST_ONLY / price-changing MODIFY, with ``q`` the order's
      quantity (the MODIFY's new quantity):
      ``filled == q`` -> ``FILLED``;
      ``0 < filled < q`` -> ``PARTIAL`` (reason ``NONE`` if the rest rests, else
      ``SELF_TRADE`` if STP dropped it, else ``NO_LIQUIDITY``);
      ``filled == 0`` and rests -> ``ACCEPTED``;
      ``filled == 0`` and nothing rests -> ``CANCELLED`` with ``SELF_TRADE`` or
      ``NO_LIQUIDITY`` (same rule).
    * MODIFY at the same price: ``ACCEPTED``, ``filled = 0``, ``resting`` = new qty.
      ``qty <= current`` keeps time priority, ``qty > current`` moves it to the back of
      its level.
    * CANCEL: ``ACCEPTED``, ``filled = resting = 0``.
    * ``filled_value`` is the sum of ``price * qty`` over the row's taker fills (0 when
      it filled nothing).
    * Arrival fields of an accepted row (not rejected, not invalid: those are 0): the
      best bid / ask of its symbol before the row changed anything (0 where the side is
      empty; a MODIFY's own order still counts), and ``arrival_depth``, the total resting
      shares of the side it takes from (asks for a buy, bids for a sell; for a MODIFY the
      side opposite its order's; 0 for a CANCEL). Each book side keeps a running total
      of its shares, so none of this scans the book.

Arithmetic
    The checks bound every accepted quantity by ``MAX_QTY`` and every price by
    ``MAX_PRICE`` (:mod:`components.money`), so a fill's value and a row's
    ``filled_value`` are at most ``MAX_NOTIONAL`` (10**18) and a side's resting shares
    at most ``MAX_QTY`` times its orders (int64 holds that for fewer than 9 * 10**9
    resting orders, far beyond memory): every result fits its int64 field exactly, as
    in the fast engine, which computes in int64. ``process`` checks the batch's shape
    before it touches the book and raises nothing after.

A MODIFY with a new price takes the order out of the book and re-enters it like a LIMIT
order with the same id, agent and side (it may match; it never fails DUPLICATE_ID with
itself).

Updates (:class:`OrderUpdates`)
    An id is *touched* when (in this order within a row): a new order passes all checks
    (the taker itself, before any fill), a CANCEL or MODIFY takes effect (its target),
    then each maker as it is filled or removed by STP ``CANCEL_MAKER``. A rejected row
    touches nothing; so a rejected new order has no update row, and neither does the
    target of a rejected CANCEL/MODIFY. One row per distinct id in order of first touch;
    ``remaining`` is that id's resting quantity at the end of the batch (0 if not live),
    ``price`` and ``symbol`` its resting price and symbol then (0 if not live).
    An id that leaves the book and is reused by a later new order in the same batch
    keeps its first row and reports the new order's final remaining.
"""

from __future__ import annotations

from collections import deque

import numpy as np
from sortedcontainers import SortedDict

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

_BUY = int(Side.BUY)
_SELL = int(Side.SELL)
_LIMIT = int(OrderType.LIMIT)
_MARKET = int(OrderType.MARKET)
_IOC = int(OrderType.IOC)
_POST_ONLY = int(OrderType.POST_ONLY)
_CANCEL = int(OrderType.CANCEL)
_MODIFY = int(OrderType.MODIFY)
_N_KINDS = len(OrderType)
_STP_NONE = int(STP.NONE)
_STP_CANCEL_TAKER = int(STP.CANCEL_TAKER)
_PRICED_KINDS = (_LIMIT, _IOC, _POST_ONLY, _MODIFY)
_NEW_KINDS = (_LIMIT, _MARKET, _IOC, _POST_ONLY)


class _Order:
    """A resting order (mutable: ``qty`` shrinks as it fills or is modified)."""

    __slots__ = ("id", "agent", "symbol", "side", "price", "qty")

    def __init__(self, id: int, agent: int, symbol: int, side: int, price: int, qty: int):
        self.id = id
        self.agent = agent
        self.symbol = symbol
        self.side = side
        self.price = price  # units
        self.qty = qty  # shares left


def _level_key(side: int, price: int) -> int:
    """Sort key of a price level: ascending key = best first on both sides."""
    return -price if side == _BUY else price


def _crosses(taker_side: int, limit: int, maker_price: int) -> bool:
    """Whether a taker with limit price ``limit`` may trade at ``maker_price``."""
    return maker_price <= limit if taker_side == _BUY else maker_price >= limit


def _updates(touched: dict[int, None], orders: dict[int, _Order]) -> OrderUpdates:
    """Update rows of the touched ids: final remaining, price and symbol (0 if gone)."""
    live = [orders.get(t) for t in touched]
    n = len(live)
    return OrderUpdates(
        id=np.fromiter(touched, np.int64, n),
        remaining=np.fromiter((o.qty if o else 0 for o in live), np.int64, n),
        price=np.fromiter((o.price if o else 0 for o in live), np.int64, n),
        symbol=np.fromiter((o.symbol if o else 0 for o in live), np.int32, n),
    )


class ExactEngine:
    """Reference price-time-priority matching engine over unbounded Python structures.

    Args:
        tick_size: array-like i64[S], each symbol's tick size in units (> 0).
        stp: self-trade prevention mode (:class:`STP`).
    """

    name = "exact"

    def __init__(self, tick_size, stp: int = STP.NONE):
        tick = np.atleast_1d(np.asarray(tick_size, dtype=np.int64))
        if tick.ndim != 1 or tick.shape[0] == 0 or np.any(tick <= 0):
            raise ValueError(f"tick_size must be a non-empty 1-D array of positive ints, got {tick_size!r}")
        self.tick_size = tick
        self._tick = [int(t) for t in tick]
        self.n_symbols = int(tick.shape[0])
        self.stp = STP(int(stp))
        # _books[symbol][side]: level key -> deque[_Order]; best level first.
        self._books: list[list[SortedDict]] = [
            [SortedDict(), SortedDict()] for _ in range(self.n_symbols)
        ]
        self._orders: dict[int, _Order] = {}
        # _side_qty[symbol][side]: total shares resting on that side.
        self._side_qty: list[list[int]] = [[0, 0] for _ in range(self.n_symbols)]
        self._n_processed = 0
        self._n_fills = 0
        self._n_batches = 0

    # ------------------------------------------------------------------ processing
    def process(self, batch: OrderBatch) -> MatchResult:
        """Match one batch of orders, rows in array order.

        Args:
            batch: OrderBatch of ``B`` rows (host NumPy arrays, contract dtypes).
        Returns:
            MatchResult: outcomes aligned with the rows (``[B]``), fills in the order
            they happened (``[F]``), and updates of every touched id (``[U]``).
        """
        # Every field as its contract dtype (as the fast engine reads it), all checked
        # before the book is touched: nothing below raises.
        cols = [np.asarray(getattr(batch, name), dtype) for name, dtype in _BATCH_DTYPES.items()]
        n = cols[0].shape[0] if cols[0].ndim == 1 else -1
        if any(c.shape != (n,) for c in cols):
            raise ValueError("OrderBatch fields must all be 1-D of the same length")
        valid, ids, agents, symbols, sides, kinds, prices, qtys = (c.tolist() for c in cols)

        st_rejected, st_accepted = int(Status.REJECTED), int(Status.ACCEPTED)
        st_filled, st_partial, st_cancelled = int(Status.FILLED), int(Status.PARTIAL), int(Status.CANCELLED)
        r_self, r_noliq = int(Reason.SELF_TRADE), int(Reason.NO_LIQUIDITY)
        status = [0] * n
        reason = [0] * n
        filled = [0] * n
        resting = [0] * n
        filled_value = [0] * n
        arrival_bid = [0] * n
        arrival_ask = [0] * n
        arrival_depth = [0] * n
        fills: list[tuple] = []
        touched: dict[int, None] = {}  # insertion-ordered set of touched ids
        orders = self._orders

        for i in range(n):
            if not valid[i]:
                continue
            oid, agent, sym, side, kind, price, qty = (
                ids[i], agents[i], symbols[i], sides[i], kinds[i], prices[i], qtys[i]
            )
            bad, target = self._check(oid, agent, sym, side, kind, price, qty)
            if bad:
                status[i] = st_rejected
                reason[i] = bad
                continue
            touched[oid] = None  # the new order, or the CANCEL/MODIFY target
            bid, ask = self._best(sym, _BUY), self._best(sym, _SELL)
            arrival_bid[i] = bid[0].price if bid else 0
            arrival_ask[i] = ask[0].price if ask else 0
            if kind != _CANCEL:
                takes_from = 1 - (target.side if kind == _MODIFY else side)
                arrival_depth[i] = self._side_qty[sym][takes_from]
            if kind == _CANCEL:
                self._remove(target)
                status[i] = st_accepted
                continue
            if kind == _MODIFY:
                if price == target.price:
                    self._resize(target, qty)
                    status[i] = st_accepted
                    resting[i] = qty
                    continue
                self._remove(target)
                side = target.side
                kind = _LIMIT
            got, value, dropped_by_stp = self._match(oid, agent, sym, side, kind, price, qty, fills, touched)
            left = qty - got
            rests = left > 0 and kind in (_LIMIT, _POST_ONLY) and not dropped_by_stp
            if rests:
                self._add(_Order(oid, agent, sym, side, price, left))
            filled[i] = got
            filled_value[i] = value
            resting[i] = left if rests else 0
            if got == qty:
                status[i] = st_filled
            else:
                status[i] = st_partial if got > 0 else (st_accepted if rests else st_cancelled)
                if not rests:
                    reason[i] = r_self if dropped_by_stp else r_noliq

        self._n_processed += sum(1 for v in valid if v)
        self._n_fills += len(fills)
        self._n_batches += 1
        return MatchResult(
            outcomes=Outcomes(
                status=np.array(status, np.int8),
                reason=np.array(reason, np.int8),
                filled=np.array(filled, np.int64),
                resting=np.array(resting, np.int64),
                filled_value=np.array(filled_value, np.int64),
                arrival_bid=np.array(arrival_bid, np.int64),
                arrival_ask=np.array(arrival_ask, np.int64),
                arrival_depth=np.array(arrival_depth, np.int64),
            ),
            fills=_fills_to_arrays(fills),
            updates=_updates(touched, orders),
        )

    def _check(self, oid, agent, sym, side, kind, price, qty) -> tuple[int, _Order | None]:
        """Return ``(reason, target)``: reason 0 when the row is acceptable."""
        if not 0 <= kind < _N_KINDS:
            return Reason.BAD_KIND, None
        if not 0 <= sym < self.n_symbols:
            return Reason.UNKNOWN_SYMBOL, None
        is_new = kind in _NEW_KINDS
        if is_new and side not in (_BUY, _SELL):
            return Reason.BAD_SIDE, None
        if kind != _CANCEL and not 0 < qty <= MAX_QTY:
            return Reason.BAD_QTY, None
        if kind in _PRICED_KINDS:
            if not 0 < price <= MAX_PRICE:
                return Reason.BAD_PRICE, None
            if price % self._tick[sym] != 0:
                return Reason.OFF_TICK, None
        live = self._orders.get(oid)
        if is_new:
            if live is not None:
                return Reason.DUPLICATE_ID, None
            if kind == _POST_ONLY:
                best = self._best(sym, 1 - side)
                if best is not None and _crosses(side, price, best[0].price):
                    return Reason.WOULD_CROSS, None
            return 0, None
        if live is None or live.symbol != sym:
            return Reason.UNKNOWN_ORDER, None
        if live.agent != agent:
            return Reason.NOT_OWNER, None
        return 0, live

    def _match(self, oid, agent, sym, side, kind, price, qty, fills, touched) -> tuple[int, int, bool]:
        """Fill a taker against the opposite side; return (shares filled, their notional
        sum of price * qty, dropped by STP)."""
        book = self._books[sym][1 - side]
        totals = self._side_qty[sym]
        orders = self._orders
        stp = int(self.stp)
        limited = kind != _MARKET
        left = qty
        value = 0
        while left > 0 and book:
            key, level = book.peekitem(0)
            maker = level[0]
            if limited and not _crosses(side, price, maker.price):
                break
            while level and left > 0:
                maker = level[0]
                mid = maker.id
                if maker.agent == agent and stp != _STP_NONE:
                    if stp == _STP_CANCEL_TAKER:
                        return qty - left, value, True
                    touched[mid] = None
                    level.popleft()  # CANCEL_MAKER
                    totals[1 - side] -= maker.qty
                    del orders[mid]
                    continue
                touched[mid] = None
                q = left if left < maker.qty else maker.qty
                fills.append((oid, mid, agent, maker.agent, sym, side, maker.price, q))
                left -= q
                value += maker.price * q
                maker.qty -= q
                totals[1 - side] -= q
                if maker.qty == 0:
                    level.popleft()
                    del orders[mid]
            if not level:
                del book[key]
        return qty - left, value, False

    # ------------------------------------------------------------------ book edits
    def _best(self, sym: int, side: int) -> deque | None:
        book = self._books[sym][side]
        return book.peekitem(0)[1] if book else None

    def _add(self, order: _Order) -> None:
        """Rest ``order`` at the back of its price level."""
        book = self._books[order.symbol][order.side]
        key = _level_key(order.side, order.price)
        level = book.get(key)
        if level is None:
            level = book[key] = deque()
        level.append(order)
        self._orders[order.id] = order
        self._side_qty[order.symbol][order.side] += order.qty

    def _remove(self, order: _Order) -> None:
        """Take a live order out of the book."""
        book = self._books[order.symbol][order.side]
        key = _level_key(order.side, order.price)
        level = book[key]
        level.remove(order)
        if not level:
            del book[key]
        del self._orders[order.id]
        self._side_qty[order.symbol][order.side] -= order.qty

    def _resize(self, order: _Order, qty: int) -> None:
        """Same-price MODIFY: shrink in place (keeps priority) or grow to the back."""
        if qty > order.qty:
            level = self._books[order.symbol][order.side][_level_key(order.side, order.price)]
            level.remove(order)
            level.append(order)
        self._side_qty[order.symbol][order.side] += qty - order.qty
        order.qty = qty

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
        S, L = self.n_symbols, int(levels)
        out = {k: np.zeros((S, L), np.int64) for k in ("bid_price", "bid_qty", "ask_price", "ask_qty")}
        for s in range(S):
            for side, p_name, q_name in ((_BUY, "bid_price", "bid_qty"), (_SELL, "ask_price", "ask_qty")):
                for j, level in enumerate(self._books[s][side].values()):
                    if j >= L:
                        break
                    out[p_name][s, j] = level[0].price
                    out[q_name][s, j] = sum(o.qty for o in level)
        return Depth(**out)

    def resting_orders(self) -> dict[str, np.ndarray]:
        """Every live order as columns ``id, agent, symbol, side, price, qty`` (each ``[R]``),
        sorted by symbol, side (BUY first), then priority (best price, then earliest)."""
        rows = [
            (o.id, o.agent, o.symbol, o.side, o.price, o.qty)
            for s in range(self.n_symbols)
            for side in (_BUY, _SELL)
            for level in self._books[s][side].values()
            for o in level
        ]
        return _rows_to_resting(rows)

    def n_resting(self) -> int:
        """Number of live resting orders."""
        return len(self._orders)

    # ------------------------------------------------------------------ save / resume
    def state_dict(self) -> dict:
        """The books and counters as plain arrays: ``orders`` holds every resting order
        (:meth:`resting_orders`: by symbol, side, then level by level in priority order,
        FIFO within a level), which is all the id bookkeeping and per-side totals derive
        from; plus the batch, order and fill counters and the tick sizes and STP mode it
        was built with."""
        return {
            "engine": self.name,
            "tick_size": self.tick_size.copy(),
            "stp": int(self.stp),
            "orders": self.resting_orders(),
            "n_processed": int(self._n_processed),
            "n_fills": int(self._n_fills),
            "n_batches": int(self._n_batches),
        }

    def load_state_dict(self, d: dict) -> None:
        """Rebuild the books from what :meth:`state_dict` returned: each order appended to
        the back of its level in the saved order, so time priority is the saved one.
        Raises ``ValueError`` naming the problem (another engine, other tick sizes or STP
        mode, a duplicate id, a malformed order); the engine is unchanged then."""
        check_engine_state(d, self.name, self.tick_size, self.stp)
        cols = d["orders"]
        if set(cols) != set(_RESTING_DTYPES):
            raise ValueError(f"engine state orders: fields {sorted(cols)}, expected {sorted(_RESTING_DTYPES)}")
        rows = list(zip(*(np.asarray(cols[k]).tolist() for k in _RESTING_DTYPES)))
        if any(np.shape(cols[k]) != (len(rows),) for k in _RESTING_DTYPES):
            raise ValueError("engine state orders: fields must be 1-D of one length")
        fresh = ExactEngine(self.tick_size, self.stp)
        for oid, agent, sym, side, price, qty in rows:
            if not 0 <= sym < self.n_symbols or side not in (_BUY, _SELL) or not 0 < qty <= MAX_QTY \
                    or not 0 < price <= MAX_PRICE or price % self._tick[sym]:
                raise ValueError(f"engine state: malformed resting order {oid} "
                                 f"(symbol {sym}, side {side}, price {price}, qty {qty})")
            if oid in fresh._orders:
                raise ValueError(f"engine state: order id {oid} rests twice")
            fresh._add(_Order(oid, agent, sym, side, price, qty))
        self._books, self._orders, self._side_qty = fresh._books, fresh._orders, fresh._side_qty
        self._n_processed = int(d["n_processed"])
        self._n_fills = int(d["n_fills"])
        self._n_batches = int(d["n_batches"])

    def stats(self) -> dict:
        """Counters: batches, valid orders processed, fills, resting orders, price levels."""
        return {
            "engine": self.name,
            "batches": self._n_batches,
            "orders_processed": self._n_processed,
            "fills": self._n_fills,
            "resting": len(self._orders),
            "levels": sum(len(b) for sides in self._books for b in sides),
        }


_BATCH_DTYPES = {
    "valid": np.bool_, "id": np.int64, "agent": np.int32, "symbol": np.int32,
    "side": np.int8, "kind": np.int8, "price": np.int64, "qty": np.int64,
}
"""The OrderBatch contract's dtypes, in field order."""

_RESTING_DTYPES = {
    "id": np.int64, "agent": np.int32, "symbol": np.int32,
    "side": np.int8, "price": np.int64, "qty": np.int64,
}


def _rows_to_resting(rows: list[tuple]) -> dict[str, np.ndarray]:
    cols = list(zip(*rows)) if rows else [()] * len(_RESTING_DTYPES)
    return {k: np.array(c, dt) for (k, dt), c in zip(_RESTING_DTYPES.items(), cols)}


_FILL_ROW = np.dtype(
    [
        ("taker_id", np.int64), ("maker_id", np.int64), ("taker_agent", np.int32),
        ("maker_agent", np.int32), ("symbol", np.int32), ("side", np.int8),
        ("price", np.int64), ("qty", np.int64),
    ]
)


def _fills_to_arrays(fills: list[tuple]) -> FillBatch:
    """Fill tuples, fields in ``_FILL_ROW`` order -> FillBatch columns."""
    rows = np.array(fills, dtype=_FILL_ROW)
    return FillBatch(**{k: np.ascontiguousarray(rows[k]) for k in _FILL_ROW.names})
