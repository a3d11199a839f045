"""The device book (systems/matching/device.py) against the exact engine, fill for fill.

Random single-symbol streams (the property tests' generator, every row moved onto symbol
0) are matched by ``ExactEngine`` and by the jitted device book, batch by batch, in each
self-trade-prevention mode: the outcomes (every field), the fills (in order: taker,
maker, agents, side, price, quantity) and the book at the end of each batch must be the
same. Examples pin the cases a vector book gets wrong: a sweep through several levels
that ends inside one (JAX-LOB issue #49), a full side (``BOOK_FULL``, nothing touched),
and a vmap over books equal to the books run one by one, with no retrace.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from components.orders import STP, OrderBatch, OrderType, Reason, Side, Status
from systems import match
from systems.matching import device
from systems.matching.exact import ExactEngine
from systems.matching.stream import mixed_stream
from tests.systems.matching.test_engine_properties import OUTCOME_FIELDS, PROFILE, as_lists, resting_tuples, streams

TICK = 100
CAPACITY = 64  # above the longest random stream (60 rows): nothing fills a side
TRACES = {"count": 0}


def _process(book, orders, stp):
    TRACES["count"] += 1
    return device.process_orders(book, orders, TICK, stp)


PROCESS = jax.jit(_process, static_argnums=2)


def device_orders(batch: OrderBatch, pad: int = 0) -> device.Order:
    """The batch's rows as device orders, then ``pad - len(batch)`` invalid rows (one
    shape for every batch: one compilation)."""
    extra = max(pad - len(batch), 0)
    return device.Order(**{k: jnp.asarray(np.concatenate([getattr(batch, k), np.zeros(extra, getattr(batch, k).dtype)]))
                           for k in ("valid", "id", "agent", "side", "kind", "price", "qty")})


def device_lists(batch: OrderBatch, steps: device.Step) -> tuple[list, list]:
    """The device steps as the exact engine's outcome and fill tuples."""
    s = jax.tree.map(lambda a: np.asarray(a)[: len(batch)], steps)
    outcomes = list(zip(*(getattr(s, k).tolist() for k in OUTCOME_FIELDS)))
    fills = []
    for i in range(len(batch)):
        for j in np.flatnonzero(s.fill_qty[i] > 0):
            fills.append((int(batch.id[i]), int(s.maker_id[i, j]), int(batch.agent[i]), int(s.maker_agent[i, j]),
                          0, int(batch.side[i]) if batch.kind[i] != OrderType.MODIFY else None,
                          int(s.fill_price[i, j]), int(s.fill_qty[i, j])))
    return outcomes, fills


def book_tuples(book: device.Book) -> list[tuple]:
    """Live orders as ``resting_tuples``: by side (bids first), then priority."""
    b = jax.tree.map(np.asarray, book)
    return [(int(b.id[r, j]), int(b.agent[r, j]), 0, r, int(b.price[r, j]), int(b.qty[r, j]))
            for r in (0, 1) for j in range(b.qty.shape[1]) if b.qty[r, j] > 0]


def on_symbol_0(batch: OrderBatch) -> OrderBatch:
    return batch.replace(symbol=np.zeros_like(batch.symbol))


def compare(stp: int, batches: list[OrderBatch], capacity: int = CAPACITY) -> None:
    exact = ExactEngine(np.array([TICK], np.int64), stp)
    book = device.empty_book(capacity)
    for batch in batches:
        batch = on_symbol_0(batch)
        want_outcomes, want_fills, _ = as_lists(exact.process(batch))
        if len(batch) == 0:
            continue
        book, steps = PROCESS(book, device_orders(batch, pad=CAPACITY), stp)
        outcomes, fills = device_lists(batch, steps)
        assert outcomes == want_outcomes
        # a MODIFY's fills carry its order's side, which the exact engine knows
        assert [f[:5] + f[6:] for f in fills] == [f[:5] + f[6:] for f in want_fills]
        assert [f[5] for f in fills if f[5] is not None] == [
            w[5] for f, w in zip(fills, want_fills) if f[5] is not None]
        assert book_tuples(book) == resting_tuples(exact)


@settings(PROFILE, max_examples=80)
@given(streams())
def test_device_book_equals_the_exact_engine_on_random_streams(case):
    _ticks, stp, batches = case
    compare(stp, batches)


@settings(PROFILE, max_examples=30)
@given(streams(extreme=True))
def test_device_book_equals_the_exact_engine_at_the_bounds(case):
    _ticks, stp, batches = case
    compare(stp, batches)


def rows(*orders) -> OrderBatch:
    """``(id, agent, side, kind, price, qty)`` tuples as a one-symbol batch."""
    cols = list(zip(*orders))
    return OrderBatch.from_numpy(id=cols[0], agent=cols[1], symbol=[0] * len(orders), side=cols[2],
                                 kind=cols[3], price=cols[4], qty=cols[5])


B, S = int(Side.BUY), int(Side.SELL)
LIMIT, MARKET, CANCEL, MODIFY = (int(OrderType.LIMIT), int(OrderType.MARKET),
                                 int(OrderType.CANCEL), int(OrderType.MODIFY))


@pytest.mark.parametrize("stp", list(STP))
def test_a_sweep_through_three_levels_ends_inside_the_third(stp):
    """JAX-LOB #49: one buy crossing several ask levels must fill each at its own price,
    in price-time order, and leave the last level's remainder resting."""
    asks = [(1, 1, S, LIMIT, 10_100, 5), (2, 2, S, LIMIT, 10_000, 3), (3, 1, S, LIMIT, 10_000, 4),
            (4, 2, S, LIMIT, 10_200, 6), (5, 1, S, LIMIT, 10_300, 9)]
    batch = rows(*asks, (9, 0, B, LIMIT, 10_200, 15))
    compare(int(stp), [batch])
    book, steps = PROCESS(device.empty_book(8), device_orders(batch), int(stp))
    s = jax.tree.map(np.asarray, steps)
    assert (int(s.status[-1]), int(s.filled[-1]), int(s.resting[-1])) == (int(Status.FILLED), 15, 0)
    assert s.fill_qty[-1][:4].tolist() == [3, 4, 5, 3] and s.fill_price[-1][:4].tolist() == [10_000, 10_000, 10_100, 10_200]
    assert int(s.filled_value[-1]) == 3 * 10_000 + 4 * 10_000 + 5 * 10_100 + 3 * 10_200
    assert book_tuples(book) == [(4, 2, 0, 1, 10_200, 3), (5, 1, 0, 1, 10_300, 9)]


def test_a_full_side_rejects_with_book_full_and_touches_nothing():
    batch = rows((1, 0, B, LIMIT, 9_900, 5), (2, 1, B, LIMIT, 9_800, 5),
                 (3, 2, B, LIMIT, 10_000, 5),  # the bid side holds 2: refused
                 (4, 2, S, MARKET, 0, 1),  # the other side is not full: it takes 1 at 9,900
                 (5, 2, B, LIMIT, 9_900, 1),  # still full
                 (2, 1, B, MODIFY, 10_000, 7),  # a MODIFY leaves and re-enters: it fits
                 (1, 0, B, CANCEL, 0, 0),
                 (6, 2, B, LIMIT, 9_700, 2))  # a slot is free again
    book, steps = PROCESS(device.empty_book(2), device_orders(batch), int(STP.NONE))
    s = jax.tree.map(np.asarray, steps)
    assert s.status.tolist() == [int(Status.ACCEPTED)] * 2 + [int(Status.REJECTED), int(Status.FILLED),
                                                              int(Status.REJECTED)] + [int(Status.ACCEPTED)] * 3
    assert s.reason.tolist() == [0, 0, int(Reason.BOOK_FULL), 0, int(Reason.BOOK_FULL), 0, 0, 0]
    assert s.filled[2] == s.resting[2] == s.arrival_bid[2] == 0
    assert book_tuples(book) == [(2, 1, 0, 0, 10_000, 7), (6, 2, 0, 0, 9_700, 2)]


def test_vmap_over_books_equals_each_book_alone_without_retracing():
    rng = np.random.default_rng(5)
    n, books = 40, 4
    batches = [rows(*[(1000 * k + i, int(rng.integers(0, 3)), int(rng.integers(0, 2)),
                       int(rng.choice([LIMIT, LIMIT, LIMIT, MARKET])), int(rng.integers(95, 106)) * TICK,
                       int(rng.integers(1, 9))) for i in range(n)]) for k in range(books)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[device_orders(b) for b in batches])
    empty = jax.tree.map(lambda a: jnp.stack([a] * books), device.empty_book(16))
    run = jax.jit(jax.vmap(lambda b, o: device.process_orders(b, o, TICK, int(STP.CANCEL_MAKER))))
    together, steps = run(empty, stacked)
    for k, batch in enumerate(batches):
        alone, one = PROCESS(device.empty_book(16), device_orders(batch), int(STP.CANCEL_MAKER))
        for a, b in zip(jax.tree.leaves((together, steps)), jax.tree.leaves((alone, one))):
            np.testing.assert_array_equal(np.asarray(a)[k], np.asarray(b))
    before = TRACES["count"]
    PROCESS(device.empty_book(16), device_orders(batches[0]), int(STP.CANCEL_MAKER))
    PROCESS(device.empty_book(16), device_orders(batches[1]), int(STP.CANCEL_MAKER))
    assert TRACES["count"] == before  # same shapes and mode: the compiled step is reused


MATCH_BATCH = jax.jit(device.match_batch, static_argnames=("stp",))


@pytest.mark.slow
@settings(PROFILE, max_examples=20)
@given(streams())
def test_a_whole_batch_matched_on_the_device_is_what_the_exact_engine_does(stream):
    """``match_batch`` (the device tick's match: a while loop over the arrivals of a
    market's books) on multi-symbol streams: each arrival's outcome, the fills in order,
    the order updates (as a set: the write phase applies them in any order), the top of
    book and the books themselves, against the exact engine."""
    ticks, stp, batches = stream
    S = len(ticks)
    exact = ExactEngine(ticks, stp)
    # Three books whatever the stream's symbol count (one compilation per STP mode): the
    # rows the stream sends to the symbol just past its last go to -1, unknown to both.
    books = device.empty_book(CAPACITY, 3)
    tick_sizes = jnp.asarray(np.concatenate([ticks, np.full(3 - S, ticks[0])]))
    for batch in batches:
        batch = batch.replace(symbol=np.where(batch.symbol >= S, -1, batch.symbol).astype(batch.symbol.dtype))
        want = exact.process(batch)
        pad = {k: np.concatenate([getattr(batch, k), np.zeros(64 - len(batch), getattr(batch, k).dtype)])
               for k in batch.__dataclass_fields__}
        orders = jax.tree.map(jnp.asarray, OrderBatch.from_numpy(**pad))
        arrival = match.arrival_rows(orders.valid, jnp.zeros(64, jnp.uint32))  # valid rows in row order
        books, m = MATCH_BATCH(books, orders, arrival, tick_sizes, stp=stp)
        m = jax.tree.map(np.asarray, m)
        n = int(m.n)
        rows = np.flatnonzero(batch.valid)
        assert np.array_equal(m.arrival[:n], rows)
        for k in OUTCOME_FIELDS:
            assert np.array_equal(getattr(m.outcomes, k)[:n], getattr(want.outcomes, k)[rows]), k
        traded = m.fills[5] > 0
        f = want.fills
        assert np.array_equal(m.fills[:, traded], np.stack([f.taker_agent, f.maker_agent, f.symbol, f.side,
                                                            f.price, f.qty]).astype(np.int64))
        u = want.updates
        got = {tuple(c) for c in m.updates[:, m.updates[0] >= 0].T.tolist()}
        assert got == set(zip(u.id.tolist(), u.remaining.tolist(), u.price.tolist(), u.symbol.tolist()))
        top = exact.top_of_book()
        assert np.array_equal(m.top[:, :S], np.stack([top.bid_price, top.bid_qty, top.ask_price, top.ask_qty]))
        assert m.status.tolist() == np.bincount(want.outcomes.status[rows], minlength=len(Status)).tolist()
        assert resting(books) == resting_tuples(exact)


IN_ORDER = jax.jit(device._in_arrival_order, static_argnames=("stp", "axis_name"))
BY_SYMBOL = jax.jit(device._by_symbol, static_argnames=("stp", "axis_name"))
MAY_CROSS = jax.jit(device._ids_may_cross)


def arrived_rows(batch: OrderBatch, rows: int, seed: int):
    """``batch`` padded to ``rows`` rows (JAX) in a random arrival order: the arrived
    orders (valid first) and their count."""
    pad = {k: np.concatenate([getattr(batch, k), np.zeros(rows - len(batch), getattr(batch, k).dtype)])
           for k in batch.__dataclass_fields__}
    orders = jax.tree.map(jnp.asarray, OrderBatch.from_numpy(**pad))
    priority = jnp.asarray(np.random.default_rng(seed).integers(0, 2**32, rows, dtype=np.uint64).astype(np.uint32))
    arrival = match.arrival_rows(orders.valid, priority)
    arrived = device.MarketOrder(**{k: getattr(orders, k)[arrival] for k in device.MarketOrder.__dataclass_fields__})
    return arrived, orders.valid.sum().astype(jnp.int32)


def filled(m) -> tuple:
    """A Matched's fills and fill ids without its empty slots, its outcomes, its order
    updates as a set, its top of book, status counts and BOOK_FULL count."""
    m = jax.tree.map(np.asarray, m)
    traded = m.fills[5] > 0
    updates = {tuple(c) for c in m.updates[:, m.updates[0] >= 0].T.tolist()}
    outcomes = {k: getattr(m.outcomes, k).tolist() for k in OUTCOME_FIELDS}
    return (m.fills[:, traded].tolist(), m.fill_ids[:, traded].tolist(), outcomes, updates,
            m.top.tolist(), m.status.tolist(), int(m.book_full), int(m.n))


def resting(books) -> list[tuple]:
    """Every live order of ``[S, 2, C]`` books in priority order: (id, agent, symbol, side, price, qty)."""
    b = jax.tree.map(np.asarray, books)
    S, _, C = b.qty.shape
    return [(int(b.id[s, r, j]), int(b.agent[s, r, j]), s, r, int(b.price[s, r, j]), int(b.qty[s, r, j]))
            for s in range(S) for r in (0, 1) for j in range(C) if b.qty[s, r, j] > 0]


@pytest.mark.parametrize("stp, width", [
    (STP.CANCEL_MAKER, device.WIDTH),  # makers removed by self-trade prevention are touched too
    (STP.CANCEL_TAKER, 2),  # and many steps keep makers beyond the width
], ids=lambda v: v.name.lower() if isinstance(v, STP) else str(v))
def test_matching_by_symbol_gives_what_matching_in_arrival_order_gives(stp, width, monkeypatch):
    """Dense streams on three books (every kind, reused ids, sweeps, malformed rows):
    wherever no id may cross symbols and the spill slots suffice, the by-symbol form gives
    the same books, fills, outcomes and updates as the arrival-order form, and
    ``match_batch`` (one market of several symbols) gives them in every case."""
    monkeypatch.setattr(device, "WIDTH", width)
    by_symbol = jax.jit(lambda *a, stp: device._by_symbol(*a, stp), static_argnames=("stp",))  # traced anew
    ticks = jnp.asarray([100, 50, 25])
    books = device.empty_book(CAPACITY, 3)
    compared = 0
    for seed in range(16):
        batch = mixed_stream(32, 3, seed=seed, tick=[100, 50, 25], first_id=1 + 1000 * seed, n_levels=4)
        batch = batch.replace(symbol=np.mod(batch.symbol, 3).astype(batch.symbol.dtype))  # no unknown symbol
        arrived, n = arrived_rows(batch, 64, seed)  # the whole-batch test's shapes: its compilations serve
        want_books, want = IN_ORDER(books, arrived, n, ticks, stp=stp, axis_name=None)
        if not bool(MAY_CROSS(books, arrived)):
            got_books, got, complete = by_symbol(books, arrived, n, ticks, stp=stp)
            if bool(complete):
                assert resting(got_books) == resting(want_books)
                assert filled(got) == filled(want)
                compared += 1
        arrival = jnp.arange(64, dtype=jnp.int32)  # arrived is already in arrival order
        orders = OrderBatch(**{k: getattr(arrived, k) for k in OrderBatch.__dataclass_fields__})
        both_books, both = MATCH_BATCH(books, orders, arrival, ticks, stp=stp)
        assert resting(both_books) == resting(want_books) and filled(both) == filled(want)
        books = want_books
    assert compared >= 6  # the by-symbol form was taken and checked


@pytest.mark.parametrize("spills", [3, 2])
def test_sweeps_through_many_makers_by_symbol(spills, monkeypatch):
    """Market orders that sweep ten makers each, on three symbols in three steps: with a
    width of 2 the by-symbol form keeps those steps' makers in its spill slots and gives
    the arrival-order results; with fewer slots than such steps it says so, and
    ``match_batch`` matches in arrival order."""
    monkeypatch.setattr(device, "WIDTH", 2)
    monkeypatch.setattr(device, "SPILLS", spills)
    by_symbol = jax.jit(lambda *a: device._by_symbol(*a, 0))  # traced anew with these constants
    ticks = jnp.asarray([100, 100, 100])
    rests = [(1 + 100 * s + i, 1 + i % 3, s, int(Side.SELL), int(OrderType.LIMIT), 100 * (10 + i), 1)
             for s in range(3) for i in range(12)]
    sweeps = [(1000 + 10 * s + r, 5, s, int(Side.BUY), int(OrderType.MARKET), 0, q)
              for r, q in enumerate((4, 4, 3)) for s in range(3)]
    books = device.empty_book(CAPACITY, 3)
    for rows in (rests, sweeps):
        cols = dict(zip(("id", "agent", "symbol", "side", "kind", "price", "qty"), map(list, zip(*rows))))
        arrived, n = arrived_rows(OrderBatch.from_numpy(**cols), 64, 0)
        want_books, want = IN_ORDER(books, arrived, n, ticks, stp=0, axis_name=None)
        got_books, got, complete = by_symbol(books, arrived, n, ticks)
        orders = OrderBatch(**{k: getattr(arrived, k) for k in OrderBatch.__dataclass_fields__})
        whole_books, whole = MATCH_BATCH(books, orders, jnp.arange(64, dtype=jnp.int32), ticks, stp=0)
        assert resting(whole_books) == resting(want_books) and filled(whole) == filled(want)
        if rows is sweeps:
            assert len(filled(want)[0][0]) == 33  # 11 fills a symbol
            assert bool(complete) == (spills >= 3)
        if bool(complete):
            assert resting(got_books) == resting(want_books) and filled(got) == filled(want)
        books = want_books


def test_ids_that_may_cross_symbols_are_found():
    """A new order's id resting on another symbol, or also the id of a row that could rest
    there, sends the batch to the arrival-order form; IOC orders that repeat one id on
    several symbols (a factor trader's rebalance) and a symbol's own duplicates do not."""
    books = device.empty_book(8, 2)
    books = books.replace(id=books.id.at[1, 1, 0].set(7), qty=books.qty.at[1, 1, 0].set(5),
                          price=books.price.at[1, 1, 0].set(300))

    def batch(*rows):  # (id, symbol, kind)
        return device.MarketOrder(
            valid=jnp.ones(len(rows), bool), id=jnp.asarray([r[0] for r in rows], jnp.int64),
            agent=jnp.zeros(len(rows), jnp.int32), symbol=jnp.asarray([r[1] for r in rows], jnp.int32),
            side=jnp.zeros(len(rows), jnp.int8), kind=jnp.asarray([r[2] for r in rows], jnp.int8),
            price=jnp.full(len(rows), 100, jnp.int64), qty=jnp.ones(len(rows), jnp.int64))

    L, IOC, C, M = int(OrderType.LIMIT), int(OrderType.IOC), int(OrderType.CANCEL), int(OrderType.MODIFY)
    assert bool(MAY_CROSS(books, batch((7, 0, L))))  # id 7 rests on symbol 1
    assert not bool(MAY_CROSS(books, batch((7, 1, L))))  # a duplicate on its own book: the book refuses it
    assert not bool(MAY_CROSS(books, batch((7, 0, C))))  # a cancel looks in its own book only
    assert bool(MAY_CROSS(books, batch((9, 0, L), (9, 1, L))))  # one new id on two symbols, both may rest
    assert bool(MAY_CROSS(books, batch((9, 0, IOC), (9, 1, M))))  # a modify may rest under that id
    assert not bool(MAY_CROSS(books, batch((9, 0, IOC), (9, 1, IOC), (11, 1, L))))  # IOC never rests
    assert bool(MAY_CROSS(books, batch((12, 2, L))))  # no such symbol


def test_match_markets_under_vmap_is_match_batch_of_each_market():
    """``match_markets`` (the environments' match: a ``custom_vmap`` that gives the markets
    of any ``vmap``, nested ones merged, one shared loop) gives each market what
    ``match_batch`` gives it alone: six markets of three symbols vmapped as 2 x 3 (the
    inner ``vmap`` takes the first rule, the outer folds its axis into the markets'), each
    with its own count of arrivals, two batches each so the second meets resting books."""
    ticks = jnp.asarray([100, 50, 25])
    stp = int(STP.CANCEL_MAKER)
    markets = 6
    books = [device.empty_book(CAPACITY, 3) for _ in range(markets)]
    nested = jax.jit(jax.vmap(jax.vmap(lambda b, o, a: device.match_markets(b, o, a, ticks, stp))))
    nested_books = jax.tree.map(lambda *a: jnp.stack(a).reshape((2, 3) + a[0].shape), *books)
    for round_ in range(2):
        args = []
        for k in range(markets):
            seed = 10 * round_ + k
            batch = mixed_stream(8 + 9 * k, 3, seed=seed, tick=[100, 50, 25], first_id=1 + 1000 * seed, n_levels=4)
            batch = batch.replace(symbol=np.mod(batch.symbol, 3).astype(batch.symbol.dtype))
            arrived, _ = arrived_rows(batch, 64, k)
            args.append((OrderBatch(**{f: getattr(arrived, f) for f in OrderBatch.__dataclass_fields__}),
                         jnp.arange(64, dtype=jnp.int32)))
        stacked = jax.tree.map(lambda *a: jnp.stack(a).reshape((2, 3) + a[0].shape), *args)
        nested_books, got = nested(nested_books, *stacked)
        counts = set()
        for k in range(markets):
            books[k], want = MATCH_BATCH(books[k], args[k][0], args[k][1], ticks, stp=stp)
            b, m = jax.tree.map(lambda a, k=k: a[k // 3, k % 3], (nested_books, got))
            assert resting(b) == resting(books[k]) and filled(m) == filled(want)
            counts.add(len(filled(m)[0][0]))
        assert len(counts) > 1  # the markets traded differently


@pytest.mark.parametrize("c", [1, 2, 5, 32])
def test_remove_prefix_one_hot_and_barrel_forms_drop_the_same_slots(c, monkeypatch):
    """``_remove_prefix``'s forms (the one-hot pick up to ``ONE_HOT_MAX`` slots, the barrel
    shifter beyond, the single book's gather) drop the first ``k`` slots of each field for
    every ``k`` in 0..c, under ``vmap`` over ``k``, with zeros behind and dtypes kept."""
    rng = np.random.default_rng(c)
    fields = [jnp.asarray(rng.integers(1, 2**62, c, dtype=np.int64)),
              jnp.asarray(rng.integers(1, 2**31 - 1, c, dtype=np.int64).astype(np.int32))]
    ks = jnp.arange(c + 1, dtype=jnp.int32)
    want = [np.stack([np.concatenate([np.asarray(f)[k:], np.zeros(k, f.dtype)]) for k in range(c + 1)])
            for f in fields]
    forms = {}
    for name, limit in (("one_hot", c), ("barrel", 0)):
        monkeypatch.setattr(device, "ONE_HOT_MAX", limit)
        forms[name] = jax.vmap(lambda k: device._remove_prefix(fields, k))(ks)  # traced now, with this limit
    forms["gather"] = [jnp.stack(x) for x in zip(*[device._remove_prefix(fields, k, gather=True) for k in range(c + 1)])]
    for name, got in forms.items():
        for g, w in zip(got, want):
            assert g.dtype == w.dtype and np.array_equal(np.asarray(g), w), name
