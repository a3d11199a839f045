"""Worked examples of the matching contract, each run against every engine in ENGINES.

Every test states the exact outcomes, fills, updates and book it expects. Prices are in
units (10,000 per currency unit); ``P(100.01)`` is 100.01 in units; the tick is 0.01.
"""

from __future__ import annotations

import numpy as np
import pytest

from components.orders import STP, OrderBatch, OrderType, Reason, Side, Status
from systems.matching import ENGINES, Engine, make_engine
from systems.matching.exact import ExactEngine
from systems.matching.fast import FastEngine
from systems.matching.stream import mixed_stream, split_batch, standard_stream

BUY, SELL = int(Side.BUY), int(Side.SELL)
LIMIT, MARKET, IOC, POST_ONLY, CANCEL, MODIFY = (int(k) for k in OrderType)
TICK = 100  # 0.01 in units


def P(currency: float) -> int:
    """Currency -> units."""
    return round(currency * 10_000)


def row(kind, id, side=BUY, price=0, qty=0, agent=0, symbol=0, valid=True) -> dict:
    return dict(kind=kind, id=id, side=side, price=price, qty=qty, agent=agent, symbol=symbol, valid=valid)


def batch(*rows: dict) -> OrderBatch:
    cols = {k: [r[k] for r in rows] for k in ("id", "agent", "symbol", "side", "kind", "price", "qty", "valid")}
    return OrderBatch.from_numpy(**cols)


def outcomes(res) -> list[tuple]:
    o = res.outcomes
    return [
        (Status(s), Reason(r), f, q)
        for s, r, f, q in zip(o.status.tolist(), o.reason.tolist(), o.filled.tolist(), o.resting.tolist())
    ]


def arrivals(res) -> list[tuple]:
    """(filled_value, arrival_bid, arrival_ask, arrival_depth) per row."""
    o = res.outcomes
    return list(zip(*(getattr(o, k).tolist() for k in
                      ("filled_value", "arrival_bid", "arrival_ask", "arrival_depth"))))


def fills(res) -> list[tuple]:
    """(taker_id, maker_id, taker_agent, maker_agent, symbol, side, price, qty) per fill."""
    f = res.fills
    return list(zip(*(getattr(f, k).tolist() for k in
                      ("taker_id", "maker_id", "taker_agent", "maker_agent", "symbol", "side", "price", "qty"))))


def updates(res) -> list[tuple]:
    return list(zip(res.updates.id.tolist(), res.updates.remaining.tolist()))


def book(engine) -> list[tuple]:
    """(id, agent, symbol, side, price, qty) of every resting order, in priority order."""
    r = engine.resting_orders()
    return list(zip(*(r[k].tolist() for k in ("id", "agent", "symbol", "side", "price", "qty"))))


@pytest.fixture(params=sorted(ENGINES))
def make(request):
    """Factory for the engine under test: ``make(ticks=(TICK,), stp=STP.NONE)``."""

    def _make(ticks=(TICK,), stp=STP.NONE) -> Engine:
        return make_engine(request.param, np.array(ticks, np.int64), stp)

    return _make


ACCEPTED, PARTIAL, FILLED, CANCELLED, REJECTED = (
    Status.ACCEPTED, Status.PARTIAL, Status.FILLED, Status.CANCELLED, Status.REJECTED)
OK = Reason.NONE


# ---------------------------------------------------------------------- order types
def test_limit_rests_then_a_crossing_limit_fills_it_at_the_makers_price(make):
    e = make()
    res = e.process(batch(row(LIMIT, 1, SELL, P(100.01), 10, agent=1)))
    assert outcomes(res) == [(ACCEPTED, OK, 0, 10)]
    assert fills(res) == [] and updates(res) == [(1, 10)]
    assert book(e) == [(1, 1, 0, SELL, P(100.01), 10)]

    res = e.process(batch(row(LIMIT, 2, BUY, P(100.03), 10, agent=2)))
    assert outcomes(res) == [(FILLED, OK, 10, 0)]
    assert fills(res) == [(2, 1, 2, 1, 0, BUY, P(100.01), 10)]
    assert updates(res) == [(2, 0), (1, 0)]  # the taker is touched first
    assert book(e) == [] and e.n_resting() == 0


def test_limit_fills_in_part_and_rests_the_remainder(make):
    e = make()
    e.process(batch(row(LIMIT, 1, SELL, P(100.01), 5, agent=1)))
    res = e.process(batch(row(LIMIT, 2, BUY, P(100.01), 8, agent=2)))
    assert outcomes(res) == [(PARTIAL, OK, 5, 3)]
    assert fills(res) == [(2, 1, 2, 1, 0, BUY, P(100.01), 5)]
    assert updates(res) == [(2, 3), (1, 0)]
    assert book(e) == [(2, 2, 0, BUY, P(100.01), 3)]


def test_limit_orders_that_do_not_cross_both_rest(make):
    e = make()
    res = e.process(batch(row(LIMIT, 1, BUY, P(99.99), 4, agent=1), row(LIMIT, 2, SELL, P(100.01), 6, agent=2)))
    assert outcomes(res) == [(ACCEPTED, OK, 0, 4), (ACCEPTED, OK, 0, 6)]
    assert fills(res) == []
    top = e.top_of_book()
    assert (top.bid_price.tolist(), top.bid_qty.tolist(), top.ask_price.tolist(), top.ask_qty.tolist()) == (
        [P(99.99)], [4], [P(100.01)], [6])


def test_market_order_walks_the_book_with_slippage_and_fills_in_part(make):
    e = make()
    e.process(batch(
        row(LIMIT, 1, SELL, P(100.01), 10, agent=1),
        row(LIMIT, 2, SELL, P(100.02), 20, agent=1),
        row(LIMIT, 3, SELL, P(100.03), 5, agent=1),
    ))
    res = e.process(batch(row(MARKET, 4, BUY, 0, 50, agent=2)))
    assert outcomes(res) == [(PARTIAL, Reason.NO_LIQUIDITY, 35, 0)]
    assert fills(res) == [
        (4, 1, 2, 1, 0, BUY, P(100.01), 10),
        (4, 2, 2, 1, 0, BUY, P(100.02), 20),
        (4, 3, 2, 1, 0, BUY, P(100.03), 5),
    ]
    assert updates(res) == [(4, 0), (1, 0), (2, 0), (3, 0)]
    assert book(e) == []


def test_market_orders_report_arrival_quotes_depth_and_filled_notional(make):
    e = make()
    e.process(batch(
        row(LIMIT, 1, SELL, P(100.01), 10, agent=1),
        row(LIMIT, 2, SELL, P(100.02), 20, agent=1),
        row(LIMIT, 3, SELL, P(100.03), 5, agent=1),
        row(LIMIT, 4, BUY, P(99.99), 7, agent=1),
    ))
    res = e.process(batch(
        row(MARKET, 5, BUY, 0, 25, agent=2),  # walks two levels: 10 @ 100.01 + 15 @ 100.02
        row(MARKET, 6, BUY, 0, 50, agent=2),  # takes the last 10 of 35 and runs dry
        row(MARKET, 7, SELL, 0, 3, agent=2),  # the ask side is empty now
        row(MARKET, 8, BUY, 0, 1, agent=2),  # nothing to take
    ))
    assert outcomes(res) == [
        (FILLED, OK, 25, 0),
        (PARTIAL, Reason.NO_LIQUIDITY, 10, 0),
        (FILLED, OK, 3, 0),
        (CANCELLED, Reason.NO_LIQUIDITY, 0, 0),
    ]
    assert arrivals(res) == [
        (10 * P(100.01) + 15 * P(100.02), P(99.99), P(100.01), 35),
        (5 * P(100.02) + 5 * P(100.03), P(99.99), P(100.02), 10),
        (3 * P(99.99), P(99.99), 0, 7),
        (0, P(99.99), 0, 0),
    ]
    o = res.outcomes
    assert o.filled_value[0] / o.filled[0] == P(100.016)  # average fill price, units
    # Slippage of the first order against the arrival mid (100.00): 1.6 bp.
    mid = (o.arrival_bid[0] + o.arrival_ask[0]) / 2
    assert round((o.filled_value[0] / o.filled[0] - mid) / mid * 1e4, 6) == 1.6


def test_arrival_fields_of_limit_modify_ioc_cancel_and_rejected_rows(make):
    e = make()
    e.process(batch(row(LIMIT, 1, SELL, P(100.02), 10, agent=1), row(LIMIT, 2, BUY, P(100.00), 4, agent=1)))
    res = e.process(batch(
        row(LIMIT, 3, BUY, P(100.00), 6, agent=2),  # rests; takes from the asks (10)
        row(MODIFY, 1, side=BUY, price=P(100.02), qty=12, agent=1),  # a sell: takes from the bids (4 + 6)
        row(IOC, 4, SELL, P(100.00), 15, agent=3),  # takes all 10 bids at 100.00
        row(CANCEL, 1, agent=1),  # quotes on arrival, no depth
        row(LIMIT, 5, BUY, 0, 1, agent=2),  # rejected (BAD_PRICE): zeros
        row(LIMIT, 6, BUY, P(100.00), 1, agent=2, valid=False),  # skipped: zeros
    ))
    assert outcomes(res) == [
        (ACCEPTED, OK, 0, 6),
        (ACCEPTED, OK, 0, 12),
        (PARTIAL, Reason.NO_LIQUIDITY, 10, 0),
        (ACCEPTED, OK, 0, 0),
        (REJECTED, Reason.BAD_PRICE, 0, 0),
        (Status.NONE, OK, 0, 0),
    ]
    assert arrivals(res) == [
        (0, P(100.00), P(100.02), 10),
        (0, P(100.00), P(100.02), 10),
        (10 * P(100.00), P(100.00), P(100.02), 10),
        (0, 0, P(100.02), 0),
        (0, 0, 0, 0),
        (0, 0, 0, 0),
    ]


def test_market_order_fills_in_full_inside_one_level(make):
    e = make()
    e.process(batch(row(LIMIT, 1, BUY, P(99.00), 10, agent=1)))
    res = e.process(batch(row(MARKET, 2, SELL, -7, 4, agent=2)))  # price is ignored
    assert outcomes(res) == [(FILLED, OK, 4, 0)]
    assert fills(res) == [(2, 1, 2, 1, 0, SELL, P(99.00), 4)]
    assert updates(res) == [(2, 0), (1, 6)]
    assert book(e) == [(1, 1, 0, BUY, P(99.00), 6)]


def test_market_order_on_an_empty_side_is_cancelled_no_liquidity(make):
    e = make()
    e.process(batch(row(LIMIT, 1, BUY, P(99.00), 10, agent=1)))
    res = e.process(batch(row(MARKET, 2, BUY, 0, 5, agent=2)))
    assert outcomes(res) == [(CANCELLED, Reason.NO_LIQUIDITY, 0, 0)]
    assert fills(res) == [] and updates(res) == [(2, 0)]
    assert book(e) == [(1, 1, 0, BUY, P(99.00), 10)]


def test_ioc_stops_at_its_limit_and_drops_the_rest(make):
    e = make()
    e.process(batch(row(LIMIT, 1, SELL, P(100.01), 5, agent=1), row(LIMIT, 2, SELL, P(100.03), 5, agent=1)))
    res = e.process(batch(row(IOC, 3, BUY, P(100.02), 8, agent=2)))
    assert outcomes(res) == [(PARTIAL, Reason.NO_LIQUIDITY, 5, 0)]
    assert fills(res) == [(3, 1, 2, 1, 0, BUY, P(100.01), 5)]
    assert updates(res) == [(3, 0), (1, 0)]
    assert book(e) == [(2, 1, 0, SELL, P(100.03), 5)]

    res = e.process(batch(row(IOC, 4, BUY, P(100.02), 8, agent=2)))
    assert outcomes(res) == [(CANCELLED, Reason.NO_LIQUIDITY, 0, 0)]
    assert fills(res) == [] and updates(res) == [(4, 0)]

    res = e.process(batch(row(IOC, 5, BUY, P(100.03), 5, agent=2)))
    assert outcomes(res) == [(FILLED, OK, 5, 0)]
    assert book(e) == []


def test_post_only_rests_when_it_does_not_cross(make):
    e = make()
    e.process(batch(row(LIMIT, 1, SELL, P(100.02), 5, agent=1)))
    res = e.process(batch(row(POST_ONLY, 2, BUY, P(100.01), 7, agent=2)))
    assert outcomes(res) == [(ACCEPTED, OK, 0, 7)]
    assert updates(res) == [(2, 7)]
    assert book(e) == [(2, 2, 0, BUY, P(100.01), 7), (1, 1, 0, SELL, P(100.02), 5)]


def test_cancel_removes_the_order(make):
    e = make()
    e.process(batch(row(LIMIT, 1, BUY, P(99.00), 10, agent=3), row(LIMIT, 2, BUY, P(99.00), 1, agent=4)))
    res = e.process(batch(row(CANCEL, 1, side=9, price=-1, qty=0, agent=3)))  # side/price/qty ignored
    assert outcomes(res) == [(ACCEPTED, OK, 0, 0)]
    assert fills(res) == [] and updates(res) == [(1, 0)]
    assert book(e) == [(2, 4, 0, BUY, P(99.00), 1)]


def test_new_order_and_its_cancel_in_one_batch(make):
    e = make()
    res = e.process(batch(row(LIMIT, 5, SELL, P(101.00), 3, agent=1), row(CANCEL, 5, agent=1)))
    assert outcomes(res) == [(ACCEPTED, OK, 0, 3), (ACCEPTED, OK, 0, 0)]
    assert updates(res) == [(5, 0)]
    assert book(e) == []


# ---------------------------------------------------------------------- modify
def _two_bids(make):
    e = make()
    e.process(batch(row(LIMIT, 1, BUY, P(100.00), 10, agent=1), row(LIMIT, 2, BUY, P(100.00), 10, agent=2)))
    return e


def test_modify_size_down_keeps_time_priority(make):
    e = _two_bids(make)
    res = e.process(batch(row(MODIFY, 1, price=P(100.00), qty=4, agent=1)))
    assert outcomes(res) == [(ACCEPTED, OK, 0, 4)]
    assert fills(res) == [] and updates(res) == [(1, 4)]
    res = e.process(batch(row(LIMIT, 3, SELL, P(100.00), 6, agent=3)))
    assert fills(res) == [(3, 1, 3, 1, 0, SELL, P(100.00), 4), (3, 2, 3, 2, 0, SELL, P(100.00), 2)]
    assert book(e) == [(2, 2, 0, BUY, P(100.00), 8)]


def test_modify_same_size_same_price_changes_nothing(make):
    e = _two_bids(make)
    res = e.process(batch(row(MODIFY, 1, price=P(100.00), qty=10, agent=1)))
    assert outcomes(res) == [(ACCEPTED, OK, 0, 10)]
    assert book(e) == [(1, 1, 0, BUY, P(100.00), 10), (2, 2, 0, BUY, P(100.00), 10)]


def test_modify_size_up_loses_time_priority(make):
    e = _two_bids(make)
    res = e.process(batch(row(MODIFY, 1, price=P(100.00), qty=15, agent=1)))
    assert outcomes(res) == [(ACCEPTED, OK, 0, 15)]
    assert book(e) == [(2, 2, 0, BUY, P(100.00), 10), (1, 1, 0, BUY, P(100.00), 15)]
    res = e.process(batch(row(LIMIT, 3, SELL, P(100.00), 12, agent=3)))
    assert fills(res) == [(3, 2, 3, 2, 0, SELL, P(100.00), 10), (3, 1, 3, 1, 0, SELL, P(100.00), 2)]
    assert updates(res) == [(3, 0), (2, 0), (1, 13)]


def test_modify_price_change_loses_time_priority(make):
    e = make()
    e.process(batch(row(LIMIT, 1, BUY, P(100.00), 10, agent=1), row(LIMIT, 2, BUY, P(100.01), 10, agent=2)))
    res = e.process(batch(row(MODIFY, 1, side=SELL, price=P(100.01), qty=10, agent=1)))  # side ignored
    assert outcomes(res) == [(ACCEPTED, OK, 0, 10)]
    assert book(e) == [(2, 2, 0, BUY, P(100.01), 10), (1, 1, 0, BUY, P(100.01), 10)]
    res = e.process(batch(row(LIMIT, 3, SELL, P(100.01), 15, agent=3)))
    assert fills(res) == [(3, 2, 3, 2, 0, SELL, P(100.01), 10), (3, 1, 3, 1, 0, SELL, P(100.01), 5)]


def test_modify_to_a_crossing_price_matches_like_a_limit_order(make):
    e = make()
    e.process(batch(row(LIMIT, 1, BUY, P(99.99), 10, agent=1), row(LIMIT, 2, SELL, P(100.01), 4, agent=2)))
    res = e.process(batch(row(MODIFY, 1, price=P(100.02), qty=10, agent=1)))
    assert outcomes(res) == [(PARTIAL, OK, 4, 6)]
    assert fills(res) == [(1, 2, 1, 2, 0, BUY, P(100.01), 4)]
    assert updates(res) == [(1, 6), (2, 0)]
    assert book(e) == [(1, 1, 0, BUY, P(100.02), 6)]

    e.process(batch(row(LIMIT, 3, SELL, P(100.05), 6, agent=2)))
    res = e.process(batch(row(MODIFY, 1, price=P(100.05), qty=3, agent=1)))
    assert outcomes(res) == [(FILLED, OK, 3, 0)]
    assert updates(res) == [(1, 0), (3, 3)]
    assert book(e) == [(3, 2, 0, SELL, P(100.05), 3)]


# ---------------------------------------------------------------------- rejects
SETUP = [row(LIMIT, 1, BUY, P(100.00), 10, agent=1), row(LIMIT, 2, SELL, P(100.02), 10, agent=2)]
REJECTS = [
    ("kind out of range", row(9, 10, BUY, P(100.00), 1), Reason.BAD_KIND),
    ("negative kind", row(-1, 10, BUY, P(100.00), 1), Reason.BAD_KIND),
    ("kind before symbol", row(7, 10, BUY, P(100.00), 1, symbol=5), Reason.BAD_KIND),
    ("symbol out of range", row(LIMIT, 10, BUY, P(100.00), 1, symbol=2), Reason.UNKNOWN_SYMBOL),
    ("negative symbol", row(CANCEL, 1, agent=1, symbol=-1), Reason.UNKNOWN_SYMBOL),
    ("bad side", row(LIMIT, 10, 2, P(100.00), 1), Reason.BAD_SIDE),
    ("bad side, market", row(MARKET, 10, -1, 0, 1), Reason.BAD_SIDE),
    ("zero qty", row(LIMIT, 10, BUY, P(100.00), 0), Reason.BAD_QTY),
    ("negative qty, market", row(MARKET, 10, SELL, 0, -5), Reason.BAD_QTY),
    ("modify to zero qty", row(MODIFY, 1, price=P(100.00), qty=0, agent=1), Reason.BAD_QTY),
    ("qty before price", row(LIMIT, 10, BUY, 0, 0), Reason.BAD_QTY),
    ("zero price", row(LIMIT, 10, BUY, 0, 1), Reason.BAD_PRICE),
    ("negative price, ioc", row(IOC, 10, BUY, -TICK, 1), Reason.BAD_PRICE),
    ("modify to zero price", row(MODIFY, 1, price=0, qty=5, agent=1), Reason.BAD_PRICE),
    ("off tick", row(LIMIT, 10, BUY, P(100.00) + 50, 1), Reason.OFF_TICK),
    ("off the coarser tick of symbol 1", row(POST_ONLY, 10, BUY, P(100.01), 1, symbol=1), Reason.OFF_TICK),
    ("off tick before unknown order", row(MODIFY, 99, price=P(100.00) + 1, qty=1), Reason.OFF_TICK),
    ("duplicate live id", row(LIMIT, 1, SELL, P(100.05), 1, agent=1), Reason.DUPLICATE_ID),
    ("duplicate live id, market", row(MARKET, 2, BUY, 0, 1, agent=3), Reason.DUPLICATE_ID),
    ("cancel unknown id", row(CANCEL, 99, agent=1), Reason.UNKNOWN_ORDER),
    ("cancel on the wrong symbol", row(CANCEL, 1, agent=1, symbol=1), Reason.UNKNOWN_ORDER),
    ("modify unknown id", row(MODIFY, 99, price=P(100.00), qty=1, agent=1), Reason.UNKNOWN_ORDER),
    ("cancel someone else's order", row(CANCEL, 1, agent=2), Reason.NOT_OWNER),
    ("modify someone else's order", row(MODIFY, 2, price=P(100.02), qty=1, agent=1), Reason.NOT_OWNER),
    ("post only that would cross", row(POST_ONLY, 10, BUY, P(100.02), 1, agent=3), Reason.WOULD_CROSS),
    ("post only sell that would cross", row(POST_ONLY, 10, SELL, P(99.00), 1, agent=3), Reason.WOULD_CROSS),
]


@pytest.mark.parametrize("bad,reason", [r[1:] for r in REJECTS], ids=[r[0] for r in REJECTS])
def test_rejected_order_gets_its_reason_and_leaves_the_book_unchanged(make, bad, reason):
    e = make(ticks=(TICK, 5 * TICK))
    e.process(batch(*SETUP))
    before_book, before_depth = book(e), e.depth(3)
    res = e.process(batch(bad))
    assert outcomes(res) == [(REJECTED, reason, 0, 0)]
    assert fills(res) == [] and updates(res) == []
    assert book(e) == before_book
    after = e.depth(3)
    for k in ("bid_price", "bid_qty", "ask_price", "ask_qty"):
        assert np.array_equal(getattr(after, k), getattr(before_depth, k))


def test_invalid_rows_are_skipped(make):
    e = make()
    res = e.process(batch(
        row(LIMIT, 1, BUY, P(100.00), 5, valid=False),
        row(9, 2, 7, -1, -1, symbol=-4, valid=False),  # garbage, but masked out
        row(LIMIT, 3, BUY, P(100.00), 5),
    ))
    assert outcomes(res) == [(Status.NONE, OK, 0, 0), (Status.NONE, OK, 0, 0), (ACCEPTED, OK, 0, 5)]
    assert updates(res) == [(3, 5)]
    assert e.stats()["orders_processed"] == 1


# ---------------------------------------------------------------------- self-trade prevention
def _own_then_other_ask(make, stp):
    e = make(stp=stp)
    e.process(batch(row(LIMIT, 1, SELL, P(100.01), 5, agent=1), row(LIMIT, 2, SELL, P(100.01), 5, agent=2)))
    return e


def test_stp_none_lets_an_agent_trade_with_itself(make):
    e = _own_then_other_ask(make, STP.NONE)
    res = e.process(batch(row(LIMIT, 3, BUY, P(100.01), 8, agent=1)))
    assert outcomes(res) == [(FILLED, OK, 8, 0)]
    assert fills(res) == [(3, 1, 1, 1, 0, BUY, P(100.01), 5), (3, 2, 1, 2, 0, BUY, P(100.01), 3)]
    assert updates(res) == [(3, 0), (1, 0), (2, 2)]
    assert book(e) == [(2, 2, 0, SELL, P(100.01), 2)]


def test_stp_cancel_taker_drops_the_incoming_order(make):
    e = _own_then_other_ask(make, STP.CANCEL_TAKER)
    res = e.process(batch(row(LIMIT, 3, BUY, P(100.01), 8, agent=1)))
    assert outcomes(res) == [(CANCELLED, Reason.SELF_TRADE, 0, 0)]
    assert fills(res) == [] and updates(res) == [(3, 0)]  # the own maker is not touched
    assert book(e) == [(1, 1, 0, SELL, P(100.01), 5), (2, 2, 0, SELL, P(100.01), 5)]


def test_stp_cancel_taker_after_a_partial_fill(make):
    e = make(stp=STP.CANCEL_TAKER)
    e.process(batch(row(LIMIT, 2, SELL, P(100.01), 5, agent=2), row(LIMIT, 1, SELL, P(100.01), 5, agent=1)))
    res = e.process(batch(row(MARKET, 3, BUY, 0, 8, agent=1)))
    assert outcomes(res) == [(PARTIAL, Reason.SELF_TRADE, 5, 0)]
    assert fills(res) == [(3, 2, 1, 2, 0, BUY, P(100.01), 5)]
    assert updates(res) == [(3, 0), (2, 0)]
    assert book(e) == [(1, 1, 0, SELL, P(100.01), 5)]


def test_stp_cancel_maker_removes_own_resting_order_and_goes_on(make):
    e = _own_then_other_ask(make, STP.CANCEL_MAKER)
    res = e.process(batch(row(LIMIT, 3, BUY, P(100.01), 8, agent=1)))
    assert outcomes(res) == [(PARTIAL, OK, 5, 3)]
    assert fills(res) == [(3, 2, 1, 2, 0, BUY, P(100.01), 5)]
    assert updates(res) == [(3, 3), (1, 0), (2, 0)]
    assert book(e) == [(3, 1, 0, BUY, P(100.01), 3)]


def test_post_only_against_own_order_is_rejected_whatever_the_stp(make):
    e = _own_then_other_ask(make, STP.CANCEL_MAKER)
    res = e.process(batch(row(POST_ONLY, 3, BUY, P(100.01), 1, agent=1)))
    assert outcomes(res) == [(REJECTED, Reason.WOULD_CROSS, 0, 0)]
    assert len(book(e)) == 2


# ---------------------------------------------------------------------- ids, symbols, views
def test_an_id_that_left_the_book_can_come_back_in_the_same_batch(make):
    e = make()
    e.process(batch(row(LIMIT, 1, SELL, P(100.01), 5, agent=1)))
    res = e.process(batch(
        row(LIMIT, 7, BUY, P(100.01), 5, agent=2),  # fills in full: id 7 is free again
        row(LIMIT, 7, BUY, P(99.00), 3, agent=2),
        row(LIMIT, 7, BUY, P(98.00), 1, agent=2),  # now a live duplicate
    ))
    assert outcomes(res) == [(FILLED, OK, 5, 0), (ACCEPTED, OK, 0, 3), (REJECTED, Reason.DUPLICATE_ID, 0, 0)]
    assert updates(res) == [(7, 3), (1, 0)]  # one row per id, first-touch order, final remaining
    assert book(e) == [(7, 2, 0, BUY, P(99.00), 3)]


def test_symbols_are_separate_books_with_their_own_ticks(make):
    e = make(ticks=(TICK, 5 * TICK))
    res = e.process(batch(
        row(LIMIT, 1, SELL, P(100.05), 5, agent=1, symbol=1),
        row(LIMIT, 2, BUY, P(100.05), 5, agent=2, symbol=0),
        row(LIMIT, 3, BUY, P(100.05), 2, agent=2, symbol=1),
    ))
    assert outcomes(res) == [(ACCEPTED, OK, 0, 5), (ACCEPTED, OK, 0, 5), (FILLED, OK, 2, 0)]
    assert fills(res) == [(3, 1, 2, 1, 1, BUY, P(100.05), 2)]
    assert book(e) == [(2, 2, 0, BUY, P(100.05), 5), (1, 1, 1, SELL, P(100.05), 3)]
    top = e.top_of_book()
    assert top.bid_price.tolist() == [P(100.05), 0] and top.ask_price.tolist() == [0, P(100.05)]
    assert top.bid_qty.tolist() == [5, 0] and top.ask_qty.tolist() == [0, 3]


def test_depth_and_resting_orders_list_levels_best_first(make):
    e = make()
    e.process(batch(
        row(LIMIT, 1, BUY, P(99.98), 5, agent=1),
        row(LIMIT, 2, BUY, P(100.00), 3, agent=2),
        row(LIMIT, 3, SELL, P(100.05), 2, agent=3),
        row(LIMIT, 4, BUY, P(100.00), 4, agent=1),
        row(LIMIT, 5, SELL, P(100.02), 1, agent=3),
    ))
    d = e.depth(3)
    assert d.bid_price.tolist() == [[P(100.00), P(99.98), 0]]
    assert d.bid_qty.tolist() == [[7, 5, 0]]
    assert d.ask_price.tolist() == [[P(100.02), P(100.05), 0]]
    assert d.ask_qty.tolist() == [[1, 2, 0]]
    assert [o[0] for o in book(e)] == [2, 4, 1, 5, 3]
    r = e.resting_orders()
    assert [r[k].dtype for k in ("id", "agent", "symbol", "side", "price", "qty")] == [
        np.int64, np.int32, np.int32, np.int8, np.int64, np.int64]
    s = e.stats()
    assert s["resting"] == e.n_resting() == 5 and s["orders_processed"] == 5 and s["fills"] == 0


def test_empty_batch_gives_empty_results_with_contract_dtypes(make):
    e = make()
    res = e.process(batch())
    assert len(res.fills) == 0 and res.outcomes.status.shape == (0,)
    assert res.fills.price.dtype == np.int64 and res.fills.side.dtype == np.int8
    assert res.updates.id.dtype == np.int64


# ---------------------------------------------------------------------- fast-engine specifics
def test_fast_engine_grows_past_tiny_capacities_and_still_matches_exact():
    ticks = np.array([100, 200, 100], np.int64)
    exact = ExactEngine(ticks, STP.CANCEL_MAKER)
    fast = FastEngine(ticks, STP.CANCEL_MAKER, order_capacity=1, level_capacity=1, side_capacity=1)
    stream = mixed_stream(3000, n_symbols=3, seed=7, n_levels=12, p_invalid=0.01, tick=[100, 200, 100])
    for part in split_batch(stream, 6, seed=7):
        a, b = exact.process(part), fast.process(part)
        assert (outcomes(a), fills(a), updates(a)) == (outcomes(b), fills(b), updates(b))
        assert book(exact) == book(fast)
    stats = fast.stats()
    assert all(n > 0 for n in stats["grows"].values()), stats
    assert stats["capacity"]["orders"] >= fast.n_resting() > 1
    assert stats["capacity"]["side"] > 1 and stats["capacity"]["levels"] > 1


def test_fast_engine_grows_within_one_big_batch():
    stream = standard_stream(20_000, n_symbols=2, seed=3)
    exact = ExactEngine([100, 100])
    fast = FastEngine([100, 100], order_capacity=4, level_capacity=2, side_capacity=2)
    a, b = exact.process(stream), fast.process(stream)
    assert (outcomes(a), fills(a), updates(a)) == (outcomes(b), fills(b), updates(b))
    assert book(exact) == book(fast)
    assert fast.stats()["grows"]["orders"] >= 8


def test_fast_engine_accepts_read_only_inputs():
    stream = standard_stream(500, seed=1)
    frozen = OrderBatch(**{k: np.asarray(v).copy() for k, v in stream.__dict__.items()})
    for v in frozen.__dict__.values():
        v.flags.writeable = False
    a, b = ExactEngine([100]).process(stream), FastEngine([100]).process(frozen)
    assert (outcomes(a), fills(a), updates(a)) == (outcomes(b), fills(b), updates(b))


# ---------------------------------------------------------------------- registry
def test_make_engine_rejects_unknown_names_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="allowed: device, exact, fast"):
        make_engine("quantum", [100])


@pytest.mark.parametrize("name", sorted(ENGINES))
def test_engines_follow_the_protocol_and_check_ticks(name):
    assert isinstance(make_engine(name, [100, 100]), Engine)
    assert make_engine(name, [100, 100]).n_symbols == 2
    for bad in ([0], [-100], []):
        with pytest.raises(ValueError):
            make_engine(name, bad)


def test_ragged_batch_is_refused(make):
    e = make()
    ragged = OrderBatch(**{**batch(row(LIMIT, 1, BUY, P(100.00), 1)).__dict__, "qty": np.zeros(2, np.int64)})
    with pytest.raises(ValueError, match="same length"):
        e.process(ragged)
    assert book(e) == []
