"""A deliberately naive matching engine for differential tests.

One flat Python list of resting orders; the best maker is found by scanning the whole
list (best price, then lowest arrival number). No trees, no queues, no hashing: slow and
obviously right. It follows the semantics written in ``systems/matching/exact.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

BUY, SELL = 0, 1
LIMIT, MARKET, IOC, POST_ONLY, CANCEL, MODIFY = range(6)
# Status
NONE, ACCEPTED, PARTIAL, FILLED, CANCELLED, REJECTED = range(6)
# Reason
(R_NONE, BAD_KIND, UNKNOWN_SYMBOL, BAD_SIDE, BAD_QTY, BAD_PRICE, OFF_TICK, DUPLICATE_ID,
 UNKNOWN_ORDER, NOT_OWNER, WOULD_CROSS, SELF_TRADE, NO_LIQUIDITY) = range(13)
STP_NONE, STP_CANCEL_TAKER, STP_CANCEL_MAKER = range(3)
MAX_QTY = 10**9  # shares: the largest order (components.money.MAX_QTY)
MAX_PRICE = 10**9  # units: the largest price (components.money.MAX_PRICE)


@dataclass(eq=False)  # identity: list.remove takes out exactly this order
class RefOrder:
    id: int
    agent: int
    symbol: int
    side: int
    price: int
    qty: int
    arrival: int  # time priority: smaller is earlier


class ReferenceEngine:
    """Rows in, plain tuples out. ``tick`` is a list of tick sizes per symbol."""

    def __init__(self, tick: list[int], stp: int = STP_NONE):
        self.tick = list(tick)
        self.stp = stp
        self.book: list[RefOrder] = []
        self.clock = 0

    def _live(self, oid: int) -> RefOrder | None:
        for o in self.book:
            if o.id == oid:
                return o
        return None

    def _next_arrival(self) -> int:
        self.clock += 1
        return self.clock

    def _best(self, symbol: int, side: int) -> RefOrder | None:
        """Best resting order on ``side``: highest bid / lowest ask, then earliest."""
        best = None
        for o in self.book:
            if o.symbol != symbol or o.side != side:
                continue
            if best is None:
                best = o
                continue
            better_price = o.price > best.price if side == BUY else o.price < best.price
            if better_price or (o.price == best.price and o.arrival < best.arrival):
                best = o
        return best

    def process(self, rows: list[dict]) -> tuple[list, list, list]:
        """Process rows (dicts with valid, id, agent, symbol, side, kind, price, qty).

        Returns (outcomes, fills, updates): outcomes a list of (status, reason, filled,
        resting, filled_value, arrival_bid, arrival_ask, arrival_depth) per row (the
        last four 0 for invalid and rejected rows; see ``_arrival``); fills (taker_id, maker_id, taker_agent, maker_agent, symbol,
        side, price, qty); updates (id, remaining).
        """
        outcomes, fills, touched = [], [], []

        def touch(oid):
            if oid not in touched:
                touched.append(oid)

        for r in rows:
            if not r["valid"]:
                outcomes.append((NONE, R_NONE, 0, 0, 0, 0, 0, 0))
                continue
            reason = self._reject_reason(r)
            if reason:
                outcomes.append((REJECTED, reason, 0, 0, 0, 0, 0, 0))
                continue
            kind, oid, agent, sym = r["kind"], r["id"], r["agent"], r["symbol"]
            price, qty = r["price"], r["qty"]
            if kind == CANCEL:
                bid, ask, _ = self._arrival(sym, BUY)
                target = self._live(oid)
                touch(oid)
                self.book.remove(target)
                outcomes.append((ACCEPTED, R_NONE, 0, 0, 0, bid, ask, 0))
                continue
            side = r["side"]
            if kind == MODIFY:
                target = self._live(oid)
                side = target.side
            bid, ask, depth = self._arrival(sym, side)
            if kind == MODIFY:
                touch(oid)
                if price == target.price:
                    if qty > target.qty:
                        target.arrival = self._next_arrival()
                    target.qty = qty
                    outcomes.append((ACCEPTED, R_NONE, 0, qty, 0, bid, ask, depth))
                    continue
                self.book.remove(target)
                kind = LIMIT
            else:
                touch(oid)

            # Matching.
            left = qty
            value = 0
            dropped = False
            while left > 0 and kind != POST_ONLY:
                maker = self._best(sym, 1 - side)
                if maker is None:
                    break
                if kind != MARKET:
                    ok = maker.price <= price if side == BUY else maker.price >= price
                    if not ok:
                        break
                if maker.agent == agent and self.stp != STP_NONE:
                    if self.stp == STP_CANCEL_TAKER:
                        dropped = True
                        break
                    touch(maker.id)
                    self.book.remove(maker)
                    continue
                touch(maker.id)
                q = min(left, maker.qty)
                fills.append((oid, maker.id, agent, maker.agent, sym, side, maker.price, q))
                left -= q
                value += maker.price * q
                maker.qty -= q
                if maker.qty == 0:
                    self.book.remove(maker)
            filled = qty - left
            rests = left > 0 and not dropped and kind in (LIMIT, POST_ONLY)
            if rests:
                self.book.append(RefOrder(oid, agent, sym, side, price, left, self._next_arrival()))
            arrival = (value, bid, ask, depth)
            if filled == qty:
                outcomes.append((FILLED, R_NONE, filled, 0, *arrival))
            elif rests:
                outcomes.append((PARTIAL if filled else ACCEPTED, R_NONE, filled, left, *arrival))
            else:
                why = SELF_TRADE if dropped else NO_LIQUIDITY
                outcomes.append((PARTIAL if filled else CANCELLED, why, filled, 0, *arrival))

        updates = []
        for oid in touched:
            o = self._live(oid)
            updates.append((oid, o.qty if o else 0))
        return outcomes, fills, updates

    def _arrival(self, symbol: int, side: int) -> tuple[int, int, int]:
        """(best bid, best ask, shares resting opposite ``side``) of ``symbol``, by scanning
        the whole book; 0 for an empty side."""
        bid, ask = self._best(symbol, BUY), self._best(symbol, SELL)
        depth = sum(o.qty for o in self.book if o.symbol == symbol and o.side == 1 - side)
        return (bid.price if bid else 0), (ask.price if ask else 0), depth

    def _reject_reason(self, r: dict) -> int:
        kind, sym, side, qty, price = r["kind"], r["symbol"], r["side"], r["qty"], r["price"]
        if kind not in (LIMIT, MARKET, IOC, POST_ONLY, CANCEL, MODIFY):
            return BAD_KIND
        if not 0 <= sym < len(self.tick):
            return UNKNOWN_SYMBOL
        new = kind in (LIMIT, MARKET, IOC, POST_ONLY)
        if new and side not in (BUY, SELL):
            return BAD_SIDE
        if kind != CANCEL and not 0 < qty <= MAX_QTY:
            return BAD_QTY
        if kind in (LIMIT, IOC, POST_ONLY, MODIFY):
            if not 0 < price <= MAX_PRICE:
                return BAD_PRICE
            if price % self.tick[sym] != 0:
                return OFF_TICK
        live = self._live(r["id"])
        if new:
            if live is not None:
                return DUPLICATE_ID
            if kind == POST_ONLY:
                best = self._best(sym, 1 - side)
                if best is not None and (best.price <= price if side == BUY else best.price >= price):
                    return WOULD_CROSS
            return R_NONE
        if live is None or live.symbol != sym:
            return UNKNOWN_ORDER
        if live.agent != r["agent"]:
            return NOT_OWNER
        return R_NONE

    def resting(self) -> list[tuple]:
        """Live orders as (id, agent, symbol, side, price, qty), by symbol, side, priority."""
        def key(o):
            return (o.symbol, o.side, -o.price if o.side == BUY else o.price, o.arrival)
        return [(o.id, o.agent, o.symbol, o.side, o.price, o.qty) for o in sorted(self.book, key=key)]
