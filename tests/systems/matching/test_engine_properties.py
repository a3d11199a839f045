"""Property tests: the exact and fast engines against a naive reference on random streams.

Every stream is matched by ``ReferenceEngine`` (tests/systems/matching/engine_reference.py: one list,
linear scans), ``ExactEngine`` and ``FastEngine`` (started with tiny capacities so it
grows), batch by batch. All three must return the same outcomes (including each row's
filled notional and its arrival best bid, best ask and opposite depth), fills and
updates and hold the same book. Independently of the engines, a ledger re-derives every
order's shares from the outcomes and fills and checks the invariants: fills at the
maker's price within the taker's limit, filled notional equal to the sum of the row's
fills, arrival quotes and depth equal to its own book's, no crossed book at rest, no
empty resting order, and quantity conserved per order (submitted == filled + resting +
cancelled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.orders import OrderBatch
from systems.matching import ENGINES
from systems.matching.device import DeviceEngine
from systems.matching.exact import ExactEngine
from systems.matching.fast import FastEngine
from systems.matching.stream import mixed_stream, split_batch
from tests.systems.matching import engine_reference as ref

BUY, LIMIT, MARKET, IOC, POST_ONLY, CANCEL, MODIFY = (
    ref.BUY, ref.LIMIT, ref.MARKET, ref.IOC, ref.POST_ONLY, ref.CANCEL, ref.MODIFY)
NONE, FILLED, REJECTED = ref.NONE, ref.FILLED, ref.REJECTED
R_NONE, SELF_TRADE, NO_LIQUIDITY = ref.R_NONE, ref.SELF_TRADE, ref.NO_LIQUIDITY
STP_NONE, STP_CANCEL_MAKER = ref.STP_NONE, ref.STP_CANCEL_MAKER
ReferenceEngine = ref.ReferenceEngine

TICKS = [100, 200, 100]  # units per symbol; symbol 1's coarser grid makes odd prices off-tick
TINY = {"order_capacity": 1, "level_capacity": 1, "side_capacity": 1}

PROFILE = settings(
    max_examples=800,
    deadline=None,  # numba compiles (or loads its cache) on the first call
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_FIELDS = ("valid", "id", "agent", "symbol", "side", "kind", "price", "qty")
OUTCOME_FIELDS = ("status", "reason", "filled", "resting",
                  "filled_value", "arrival_bid", "arrival_ask", "arrival_depth")


# ---------------------------------------------------------------------- streams
NEW_KINDS = (LIMIT, MARKET, IOC, POST_ONLY)


I64 = 2**63 - 1
EXTREME_PRICES = [ref.MAX_PRICE] * 4 + [ref.MAX_PRICE - 200, ref.MAX_PRICE + 200, 2 * ref.MAX_PRICE,
                                        2**62, (I64 // 200) * 200, I64, -(2**63)]
"""Prices (units) at and beyond the largest order price and the int64 limits; the
multiples of 200 are on every symbol's grid, so they reach the bound checks."""
EXTREME_QTYS = [ref.MAX_QTY] * 4 + [ref.MAX_QTY - 1, ref.MAX_QTY + 1, ref.MAX_QTY // 3, 2**62, I64, -(2**63)]
"""Quantities (shares) at and beyond the largest order and the int64 limits."""


def _row(n_symbols: int, extreme: bool = False):
    """One row: mostly well-formed, sometimes malformed in one field. With ``extreme``,
    about one price and one quantity in four is at or beyond the order bounds or the int64
    limits (:data:`EXTREME_PRICES`, :data:`EXTREME_QTYS`)."""
    prices = [int(px * 100) for px in [2, 4] * 10 + [3] * 5 + [1, 5, 6] * 2 + [0, -1, 2.5]]
    qtys = [1, 2, 3, 4, 5, 6] * 6 + [0, -1]
    if extreme:
        prices, qtys = prices + EXTREME_PRICES, qtys + EXTREME_QTYS
    return st.tuples(
        st.sampled_from([True] * 15 + [False]),  # valid
        st.sampled_from([LIMIT] * 12 + [MARKET, IOC] * 4 + [POST_ONLY] * 4
                        + [CANCEL] * 6 + [MODIFY] * 8 + [-1, 6]),
        st.integers(0, 9),  # id choice: see streams()
        st.integers(1, 6),  # which recent resting candidate a reused id names
        st.integers(0, 2),  # agent
        st.sampled_from(list(range(n_symbols)) * 30 + [n_symbols, -1]),  # symbol
        st.sampled_from([BUY, 1] * 15 + [2]),  # side (2 is invalid)
        st.sampled_from(prices),  # price in units (mostly 100-unit steps)
        st.sampled_from(qtys),  # qty
    )


@st.composite
def streams(draw, extreme: bool = False):
    """(ticks, stp, batches): a random small stream split into up to 4 batches.

    New orders usually bring a fresh id (1 in 10 reuses a recent one, often a live
    duplicate); CANCEL/MODIFY usually name one of the last few LIMIT/POST_ONLY ids
    (1 in 10 a fresh, unknown id) and, 4 times in 5, come from its agent on its symbol;
    a third of the MODIFYs keep the price. ``extreme``: prices and quantities also near
    and beyond the order bounds and the int64 limits (see :func:`_row`).
    """
    n_symbols = draw(st.integers(1, 3))
    stp = draw(st.integers(0, 2))
    rows = draw(st.lists(_row(n_symbols, extreme), min_size=12, max_size=60))  # about 24 on average
    cols = {k: [] for k in _FIELDS}
    candidates: list[int] = []  # rows that may have left an order resting
    for i, (valid, kind, u, back, agent, sym, side, price, qty) in enumerate(rows):
        reuse = (u == 0) if kind in NEW_KINDS else (u != 0)
        if reuse and candidates:
            j = candidates[-min(back, len(candidates))]
            oid = cols["id"][j]
            if u < 8:  # act as the owner, on the order's symbol
                agent, sym = cols["agent"][j], cols["symbol"][j]
            if kind == MODIFY and u % 3 == 0:
                price = cols["price"][j]
        else:
            oid = 1000 + i
        if kind in (LIMIT, POST_ONLY, MODIFY):
            candidates.append(i)
        for k, v in zip(_FIELDS, (valid, oid, agent, sym, side, kind, price, qty)):
            cols[k].append(v)
    batch = OrderBatch.from_numpy(**cols)
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=3)))
    bounds = [0, *cuts, len(rows)]
    batches = [batch.take(np.arange(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]
    return TICKS[:n_symbols], stp, batches


# ---------------------------------------------------------------------- helpers
def rows_of(batch: OrderBatch) -> list[dict]:
    cols = {k: np.asarray(getattr(batch, k)).tolist() for k in _FIELDS}
    return [dict(zip(_FIELDS, vals)) for vals in zip(*cols.values())]


def as_lists(result, engine=None) -> tuple[list, list, list]:
    """An engine's MatchResult as the reference's plain tuples (checking dtypes; with the
    engine, also checking each update row's price and symbol against its book)."""
    o, f, u = result.outcomes, result.fills, result.updates
    assert [getattr(o, k).dtype for k in OUTCOME_FIELDS] == [np.int8, np.int8] + [np.int64] * 6
    assert list(o.__dict__) == list(OUTCOME_FIELDS)
    assert [getattr(f, k).dtype for k in f.__dict__] == [
        np.int64, np.int64, np.int32, np.int32, np.int32, np.int8, np.int64, np.int64]
    assert (u.id.dtype, u.remaining.dtype, u.price.dtype, u.symbol.dtype) == (
        np.int64, np.int64, np.int64, np.int32)
    # price and symbol: the live order's at the end of the batch, zeros once it is gone.
    book = {r[0]: r for r in resting_tuples(engine)} if engine is not None else None
    if book is not None:
        for oid, rem, price, sym in zip(u.id.tolist(), u.remaining.tolist(), u.price.tolist(), u.symbol.tolist()):
            if rem > 0:
                assert (price, sym, rem) == (book[oid][4], book[oid][2], book[oid][5])
            else:
                assert (price, sym) == (0, 0) and oid not in book
    outcomes = list(zip(*(getattr(o, k).tolist() for k in OUTCOME_FIELDS)))
    fills = list(zip(*(getattr(f, k).tolist() for k in f.__dict__)))
    updates = list(zip(u.id.tolist(), u.remaining.tolist()))
    return outcomes, fills, updates


def resting_tuples(engine) -> list[tuple]:
    r = engine.resting_orders()
    return list(zip(*(r[k].tolist() for k in ("id", "agent", "symbol", "side", "price", "qty"))))


@dataclass
class Account:
    """Shares of one order's life (one incarnation of an id)."""

    submitted: int = 0
    taker_filled: int = 0
    maker_filled: int = 0
    cancelled: int = 0


@dataclass
class Live:
    agent: int
    symbol: int
    side: int
    price: int
    qty: int


class Ledger:
    """Re-derives every order's shares from outcomes and fills alone."""

    def __init__(self, stp: int):
        self.stp = stp
        self.live: dict[int, Live] = {}
        self.accounts: dict[int, Account] = {}
        self.closed: list[Account] = []
        self.volume = 0

    def _drop_stp_victim(self, oid: int) -> None:
        """An order the ledger thought live, gone without a fill: only STP CANCEL_MAKER."""
        assert self.stp == STP_CANCEL_MAKER, f"order {oid} vanished without a fill or cancel"
        self.accounts[oid].cancelled += self.live.pop(oid).qty

    def _close(self, oid: int) -> None:
        if oid in self.accounts and oid not in self.live:
            self.closed.append(self.accounts.pop(oid))

    def _check_arrival(self, sym: int, side: int | None, bid: int, ask: int, depth: int) -> None:
        """The row's arrival quotes and depth against the ledger's own book (``side`` None:
        a CANCEL, which has no depth). Under STP CANCEL_MAKER the ledger learns of victims
        only at the end of a batch, so the check is skipped there."""
        if self.stp == STP_CANCEL_MAKER:
            return
        mine = [o for o in self.live.values() if o.symbol == sym]
        bids = [o.price for o in mine if o.side == BUY]
        asks = [o.price for o in mine if o.side != BUY]
        assert bid == (max(bids) if bids else 0) and ask == (min(asks) if asks else 0)
        want = 0 if side is None else sum(o.qty for o in mine if o.side == 1 - side)
        assert depth == want

    def apply(self, rows: list[dict], outcomes: list, fills: list) -> None:
        """Book one batch's rows (with the engines' common outcomes and fills)."""
        fi = 0
        for r, (status, reason, filled, resting, value, bid, ask, depth) in zip(rows, outcomes):
            if status in (NONE, REJECTED):
                assert (filled, resting, value, bid, ask, depth) == (0,) * 6
                assert (status == NONE) == (not r["valid"])
                continue
            oid, kind, qty, price = r["id"], r["kind"], r["qty"], r["price"]
            agent, sym, side = r["agent"], r["symbol"], r["side"]
            if kind in (CANCEL, MODIFY):
                self._check_arrival(sym, None if kind == CANCEL else self.live[oid].side, bid, ask, depth)
            else:
                self._check_arrival(sym, side, bid, ask, depth)
            if kind == CANCEL:
                gone = self.live.pop(oid)
                self.accounts[oid].cancelled += gone.qty
                assert (filled, resting) == (0, 0)
                self._close(oid)
                continue
            if kind == MODIFY:
                old = self.live.pop(oid)
                acct = self.accounts[oid]
                acct.cancelled += old.qty  # a modify = cancel the rest, submit the new qty
                acct.submitted += qty
                side = old.side
                if price == old.price:
                    assert (filled, resting, value) == (0, qty, 0)
                    self.live[oid] = Live(agent, sym, side, price, qty)
                    continue
                kind = LIMIT
            else:
                if oid in self.live:  # accepted new id: the old holder must be an STP victim
                    self._drop_stp_victim(oid)
                    self._close(oid)
                assert oid not in self.accounts
                self.accounts[oid] = acct = Account(submitted=qty)
            # Fills of this taker come next, in order.
            taken = 0
            notional = 0
            while taken < filled:
                t_id, m_id, t_agent, m_agent, f_sym, f_side, f_price, f_qty = fills[fi]
                fi += 1
                assert (t_id, t_agent, f_sym, f_side) == (oid, agent, sym, side)
                assert m_id in self.live, f"fill against order {m_id}, which does not rest"
                maker = self.live[m_id]
                assert maker.side != side and maker.agent == m_agent
                assert f_price == maker.price, "fill not at the maker's price"
                if kind != MARKET:
                    assert f_price <= price if side == BUY else f_price >= price, "limit violated"
                if self.stp != STP_NONE:
                    assert m_agent != agent, "self trade despite STP"
                assert 0 < f_qty <= maker.qty
                maker.qty -= f_qty
                self.accounts[m_id].maker_filled += f_qty
                self.volume += f_qty
                taken += f_qty
                notional += f_price * f_qty
                if maker.qty == 0:
                    del self.live[m_id]
                    self._close(m_id)
            assert taken == filled
            assert notional == value, "filled_value is not the sum of the row's fills"
            dropped = qty - filled - resting
            assert dropped >= 0 and resting >= 0
            assert (status == FILLED) == (filled == qty)
            if kind in (MARKET, IOC):
                assert resting == 0
            elif dropped:
                assert reason == SELF_TRADE
            if dropped:
                assert reason in (SELF_TRADE, NO_LIQUIDITY)
            elif resting:
                assert reason == R_NONE
            acct.taker_filled += filled
            acct.cancelled += dropped
            if resting:
                assert kind in (LIMIT, POST_ONLY)
                self.live[oid] = Live(agent, sym, side, price, resting)
            self._close(oid)
        assert fi == len(fills), "fills not attributed to any taker"

    def reconcile(self, resting: list[tuple], updates: list[tuple]) -> None:
        """Compare with the engine's book and updates after a batch; check conservation."""
        book = {t[0]: t for t in resting}
        for oid in [i for i in self.live if i not in book]:
            self._drop_stp_victim(oid)
            self._close(oid)
        assert set(book) == set(self.live)
        for oid, (_, agent, sym, side, price, qty) in book.items():
            assert qty > 0, "empty resting order"
            assert Live(agent, sym, side, price, qty) == self.live[oid]
        for oid, remaining in updates:
            assert remaining == (self.live[oid].qty if oid in self.live else 0)
        for oid, a in self.accounts.items():
            rest = self.live[oid].qty if oid in self.live else 0
            assert a.submitted == a.taker_filled + a.maker_filled + a.cancelled + rest
        for a in self.closed:
            assert a.submitted == a.taker_filled + a.maker_filled + a.cancelled
        everyone = [*self.accounts.values(), *self.closed]
        assert sum(a.taker_filled for a in everyone) == self.volume
        assert sum(a.maker_filled for a in everyone) == self.volume


def expected_depth(book: list[tuple], n_symbols: int, n_levels: int) -> dict[str, np.ndarray]:
    """Depth arrays ``[S, L]`` summed from a resting-order list (reference order)."""
    out = {k: np.zeros((n_symbols, n_levels), np.int64)
           for k in ("bid_price", "bid_qty", "ask_price", "ask_qty")}
    for _, _, sym, side, price, qty in book:
        p, q = (out["bid_price"], out["bid_qty"]) if side == BUY else (out["ask_price"], out["ask_qty"])
        row = list(p[sym])
        if price not in row and 0 not in row:
            continue  # deeper than n_levels
        j = row.index(price) if price in row else row.index(0)
        p[sym, j] = price
        q[sym, j] += qty
    return out


def assert_book_views(engine, book: list[tuple]) -> None:
    """depth/top_of_book agree with the resting orders; the book is not crossed."""
    n_sym, n_lv = engine.n_symbols, 8
    want = expected_depth(book, n_sym, n_lv)
    depth = engine.depth(n_lv)
    for k, v in want.items():
        assert np.array_equal(getattr(depth, k), v), k
    top = engine.top_of_book()
    for k in want:
        assert np.array_equal(getattr(top, k), want[k][:, 0]), k
    both = (top.bid_price > 0) & (top.ask_price > 0)
    assert np.all(top.bid_price[both] < top.ask_price[both]), "crossed book at rest"


def run_differential(ticks: list[int], stp: int, batches: list[OrderBatch], device: bool = True) -> None:
    """Match ``batches`` on the reference and every engine (the device engine with room
    for every order of the stream on one side, unless ``device`` is False); compare them
    and check the ledger."""
    reference = ReferenceEngine(ticks, stp)
    engines = [ExactEngine(ticks, stp), FastEngine(ticks, stp, **TINY)]
    if device:
        rows = sum(len(b) for b in batches)
        engines.append(DeviceEngine(ticks, stp, capacity=max(64, 1 << max(rows - 1, 0).bit_length())))
    ledger = Ledger(stp)
    for batch in batches:
        rows = rows_of(batch)
        expected = reference.process(rows)
        results = [engine.process(batch) for engine in engines]
        for engine, result in zip(engines, results):
            assert as_lists(result, engine) == expected, type(engine).__name__
        exact_u = results[0].updates
        for other in results[1:]:
            for field in ("id", "remaining", "price", "symbol"):
                assert np.array_equal(getattr(exact_u, field), getattr(other.updates, field)), field
        book = reference.resting()
        for engine in engines:
            assert resting_tuples(engine) == book, type(engine).__name__
            assert engine.n_resting() == len(book)
            assert_book_views(engine, book)
        outcomes, fills, updates = expected
        ledger.apply(rows, outcomes, fills)
        ledger.reconcile(book, updates)


# ---------------------------------------------------------------------- tests
@pytest.mark.slow
@PROFILE
@given(streams())
def test_engines_match_reference_on_random_streams(stream):
    ticks, stp, batches = stream
    run_differential(ticks, stp, batches, device=False)


@settings(PROFILE, max_examples=5)
@given(streams())
def test_device_engine_matches_reference_on_random_streams(stream):
    """The same streams on the device engine too (fewer: each stream costs it a few
    jitted calls and a read of its books)."""
    ticks, stp, batches = stream
    run_differential(ticks, stp, batches)


def test_engines_match_reference_on_dense_streams():
    """Longer seeded streams (every kind, reused ids, malformed rows), split in batches."""
    for seed in range(90):
        n_symbols = 1 + seed % 3
        stp = seed % 3
        batch = mixed_stream(300, n_symbols=n_symbols, seed=seed, n_levels=3, tick=TICKS[:n_symbols])
        # the device engine on one seed in thirty: its books hold all 300 orders (512 slots)
        run_differential(TICKS[:n_symbols], stp, split_batch(batch, 5, seed=seed), device=seed % 30 == 0)


def test_registry_names_both_engines():
    assert ENGINES == {"device": DeviceEngine, "exact": ExactEngine, "fast": FastEngine}
