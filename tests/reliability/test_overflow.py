"""Orders whose money arithmetic would overflow int64: admission, every engine, settlement.

The cases of issue 18, part 2, each reproduced: an agent whose per-agent sums wrap in
admission, the exact engine raising after it mutated its book while the fast one wraps,
and then property tests with quantities and prices near the int64 limits fed to
admission, both engines and settlement, checking that the engines agree exactly and that
cash and shares are conserved with no agent beyond its cash, shares or borrow.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qtg  # noqa: F401  (x64 on)
from components.agents import NO_ORDER, order_id
from components.frame import Frame
from components.money import MAX_NOTIONAL, MAX_PRICE, MAX_QTY
from components.orders import OrderBatch, OrderType, Reason, Side, Status
from qtg.core.world import build_world
from systems.admission import admit_orders, admit_orders_assuming_fits
from systems.match import match_orders
from systems.matching import DeviceEngine, ExactEngine, FastEngine
from systems.observe import observe_market
from systems.settle import settle_fills
from tests.support import make_config
from tests.systems.matching.test_engine_properties import run_differential, streams

KEY = jax.random.key(0)
I64 = 2**63 - 1
P100 = 1_000_000  # 100.00 in units
ENGINES = (ExactEngine, FastEngine, DeviceEngine)


# ---------------------------------------------------------------------- helpers
def host_batch(rows: list[dict]) -> OrderBatch:
    """Host OrderBatch from dicts (id, agent, symbol, side, kind, price, qty[, valid])."""
    cols = {k: [r[k] for r in rows] for k in ("id", "agent", "symbol", "side", "kind", "price", "qty")}
    return OrderBatch.from_numpy(**cols, valid=[r.get("valid", True) for r in rows])


def laid_out(world, orders: list[dict]) -> tuple[OrderBatch, list[int]]:
    """A full-length device batch with each order in its agent's own rows (an agent's
    k-th order in its k-th row), every other row invalid; and the rows used, in order."""
    n = world.static.batch_rows
    cols = {k: np.zeros(n, np.int64) for k in ("id", "agent", "symbol", "side", "kind", "price", "qty")}
    valid = np.zeros(n, bool)
    used: dict[int, int] = {}
    rows = []
    for o in orders:
        kind = next(k for k in world.static.kinds if k.start <= o["agent"] < k.stop)
        row = kind.batch_start + (o["agent"] - kind.start) * kind.rows_per_agent + used.get(o["agent"], 0)
        used[o["agent"]] = used.get(o["agent"], 0) + 1
        for k in cols:
            cols[k][row] = o.get(k, 0)
        valid[row] = True
        rows.append(row)
    batch = OrderBatch.from_numpy(**cols, valid=valid)
    return jax.tree.map(jnp.asarray, batch), rows


@jax.jit(static_argnums=0)
def _read_phase(static, params, state, batch: OrderBatch) -> Frame:
    _, frame = observe_market(static, params, state, Frame(), KEY)
    return admit_orders(static, params, state, frame.replace(orders=batch), KEY)[1]


def admitted(world, state, batch: OrderBatch) -> Frame:
    """The read phase with ``batch`` as the tick's orders: observe, then admit."""
    return _read_phase(world.static, world.params, state, batch)


def holding(state, agent: int, cash: int, position=None):
    w = state.wallet
    w = w.replace(cash=w.cash.at[agent].set(cash))
    if position is not None:
        w = w.replace(position=w.position.at[agent].set(jnp.asarray(position, jnp.int64)))
    return state.replace(wallet=w)


def resting(engine) -> list[tuple]:
    r = engine.resting_orders()
    return list(zip(*(r[k].tolist() for k in ("id", "agent", "symbol", "side", "price", "qty"))))


def same_result(a, b) -> None:
    """Two MatchResults equal field for field (dtypes included)."""
    for part in ("outcomes", "fills", "updates"):
        x, y = getattr(a, part), getattr(b, part)
        for name in x.__dict__:
            u, v = getattr(x, name), getattr(y, name)
            assert u.dtype == v.dtype and np.array_equal(u, v), f"{part}.{name}"


@pytest.fixture(scope="module")
def small_world():
    """4 agents (1 maker, 3 noise traders; two rows each), one symbol at 100.00, long only."""
    cfg = make_config(**{"population.market_maker.count": 1, "population.noise.count": 3,
                         "market.symbols": ["ACME"], "market.short_selling": False})
    return build_world(cfg)


# ---------------------------------------------------------------------- the reported cases
@pytest.mark.parametrize("engine_cls", ENGINES, ids=lambda c: c.name)
def test_two_rows_buying_int64_max_shares_cannot_spend_beyond_cash(small_world, engine_cls):
    """Issue case: an agent holding 100.00 sends two buys of 2**63 - 1 shares at 100.00
    against a resting ask of 50 shares (5,000.00). Each row's price x qty and the sum of
    its rows wrapped in admission, so both passed; the fast engine filled 5,000.00 (the
    agent ended at -4,900.00) and the exact engine raised OverflowError after matching.
    Now both engines refuse both rows (BAD_QTY), nothing fills and the book is as before."""
    w = small_world
    n = w.static.n_agents
    buyer, seller = 0, 1
    state = holding(w.state, buyer, P100)
    state = holding(state, seller, 10 * P100, [50])
    ask = int(order_id(jnp.asarray(0), jnp.asarray(seller), Side.SELL, n))
    engine = engine_cls(np.asarray(w.params.tick_size))
    engine.process(host_batch([dict(id=ask, agent=seller, symbol=0, side=Side.SELL,
                                    kind=OrderType.LIMIT, price=P100, qty=50)]))
    s = state.slots
    state = state.replace(slots=s.replace(
        id=s.id.at[seller, Side.SELL].set(ask), price=s.price.at[seller, Side.SELL].set(P100),
        remaining=s.remaining.at[seller, Side.SELL].set(50)))
    book_before = resting(engine)
    buys = [dict(agent=buyer, id=int(order_id(jnp.asarray(t), jnp.asarray(buyer), Side.BUY, n)),
                 side=Side.BUY, kind=OrderType.LIMIT, price=P100, qty=I64) for t in (1, 2)]
    batch, rows = laid_out(w, buys)

    frame = admitted(w, state, batch)
    orders = jax.tree.map(np.asarray, frame.orders)
    result, arrival, _, packed = match_orders(engine, orders, np.zeros(orders.valid.shape, np.uint32))
    matched = frame.replace(**{k: jnp.asarray(v) for k, v in packed.items()})
    out, _ = settle_fills(w.static, w.params, state, matched, KEY)

    got = {int(r): (int(st), int(rs)) for r, st, rs in zip(arrival, result.outcomes.status, result.outcomes.reason)}
    assert [got[r] for r in rows] == [(Status.REJECTED, Reason.BAD_QTY)] * 2
    assert len(result.fills) == 0
    assert np.array_equal(out.wallet.cash, state.wallet.cash)
    assert np.array_equal(out.wallet.position, state.wallet.position)
    assert resting(engine) == book_before


def test_a_wrapped_row_cannot_pay_for_another_row(small_world):
    """Admission alone: a buy of 2**63 - 1 shares at 100.00 has a wrapped notional of
    -100.00, which made room for a second buy of 2 shares (200.00) by an agent holding
    100.00. Now the huge row counts for nothing (it is left to the engine, which refuses
    it as BAD_QTY) and the second one is refused."""
    w = small_world
    state = holding(w.state, 0, P100)
    orders = [dict(agent=0, id=1, side=Side.BUY, kind=OrderType.LIMIT, price=P100, qty=I64),
              dict(agent=0, id=2, side=Side.BUY, kind=OrderType.LIMIT, price=P100, qty=2)]
    batch, rows = laid_out(w, orders)
    frame = admitted(w, state, batch)
    assert np.asarray(frame.reject_reason)[rows].tolist() == [0, Reason.INSUFFICIENT_CASH]
    assert np.asarray(frame.orders.valid)[rows].tolist() == [True, False]


def test_a_wrapped_share_count_cannot_pass_the_long_limit(small_world):
    """Two buys of 2**62 shares sum to 2**63, which wraps negative: the long limit
    (shares outstanding) passed them. Each row alone is beyond the order size bound, so
    they count for nothing in admission and the engine refuses them."""
    w = small_world
    state = holding(w.state, 0, I64)
    orders = [dict(agent=0, id=i, side=Side.BUY, kind=OrderType.LIMIT, price=100, qty=2**62) for i in (1, 2)]
    batch, rows = laid_out(w, orders)
    frame = admitted(w, state, batch)
    for cls in ENGINES:
        engine = cls(np.asarray(w.params.tick_size))
        result = engine.process(jax.tree.map(np.asarray, frame.orders).take(np.asarray(rows)))
        assert result.outcomes.reason.tolist() == [Reason.BAD_QTY] * 2
        assert engine.n_resting() == 0


@pytest.fixture(scope="module")
def factor_world():
    """The default market (10 symbols) with one factor long-short trader alone: one row
    per symbol, ten rows for one agent; shares outstanding far above any order (beyond what
    a config may give: admission must hold for any state)."""
    cfg = make_config(**{"population.factor_long_short.count": 1, "population.market_maker.count": 0,
                         "population.noise.count": 0})
    world = build_world(cfg)
    big = jnp.full_like(world.params.outstanding, 10**15)
    return dataclasses.replace(world, params=world.params.replace(outstanding=big))


@pytest.mark.parametrize("cash", [P100, I64], ids=["100.00", "int64 max"])
def test_the_sum_of_many_rows_within_the_bounds_saturates(factor_world, cash):
    """Ten buys of 10**9 shares at 100,000.00 (each 10**18 units, within the bounds) sum
    to 10**19, which wraps to a negative number: an agent with 100.00 passed. The sum
    now saturates at the int64 maximum, which no cash covers (not even the int64 maximum
    itself), and every row is refused."""
    w = factor_world
    agent = w.static.kind("factor_long_short").start
    state = holding(w.state, agent, cash)
    orders = [dict(agent=agent, id=s + 1, symbol=s, side=Side.BUY, kind=OrderType.IOC,
                   price=10**9, qty=10**9) for s in range(10)]
    batch, rows = laid_out(w, orders)
    frame = admitted(w, state, batch)
    assert np.asarray(frame.reject_reason)[rows].tolist() == [Reason.INSUFFICIENT_CASH] * 10


@pytest.mark.parametrize("rows", [
    # A fill's value, 2**62 shares x 100.00, wraps to 0 in the fast engine; the exact one
    # computed it in Python and raised when it stored it, after the book had changed.
    [dict(id=1, agent=1, side=Side.SELL, price=P100, qty=2**62),
     dict(id=2, agent=0, side=Side.BUY, price=P100, qty=2**62)],
    # Shares resting on one side: 2**62 + 2**62 wraps (the arrival depth of the third row).
    [dict(id=1, agent=1, side=Side.SELL, price=P100, qty=2**62),
     dict(id=2, agent=2, side=Side.SELL, price=P100 + 100, qty=2**62),
     dict(id=3, agent=0, side=Side.BUY, price=P100 - 100, qty=1)],
    # A MODIFY up to 2**63 - 1 shares next to a resting order on the same side.
    [dict(id=1, agent=1, side=Side.SELL, price=P100, qty=10),
     dict(id=2, agent=2, side=Side.SELL, price=P100, qty=10),
     dict(id=1, agent=1, side=Side.SELL, price=P100, qty=I64, kind=OrderType.MODIFY),
     dict(id=3, agent=0, side=Side.BUY, price=P100 - 100, qty=1)],
], ids=["fill value", "side depth", "modify"])
def test_engines_agree_and_never_raise_on_overflowing_batches(rows):
    """Every engine gives the same result on batches whose sums overflow int64 (the rows
    beyond the bounds are refused with BAD_QTY), and none raises."""
    batch = host_batch([dict(dict(symbol=0, kind=OrderType.LIMIT), **r) for r in rows])
    engines = [cls([100]) for cls in ENGINES]
    results = [e.process(batch) for e in engines]
    for other, engine in zip(results[1:], engines[1:]):
        same_result(results[0], other)
        assert resting(engines[0]) == resting(engine)
    assert Reason.BAD_QTY in results[0].outcomes.reason.tolist()
    assert (results[0].outcomes.filled_value >= 0).all() and (results[0].outcomes.arrival_depth >= 0).all()


@pytest.mark.parametrize("engine_cls", ENGINES, ids=lambda c: c.name)
def test_a_refused_batch_leaves_the_book_as_it_was(engine_cls):
    """A batch of rows beyond the bounds (and of malformed rows) changes nothing: the same
    resting orders, the same depth, and the next ordinary batch matches as if it had never
    come."""
    setup = host_batch([dict(id=1, agent=1, symbol=0, side=Side.SELL, kind=OrderType.LIMIT, price=P100, qty=7),
                        dict(id=2, agent=2, symbol=0, side=Side.BUY, kind=OrderType.LIMIT, price=P100 - 100, qty=5)])
    hostile = host_batch([
        dict(id=3, agent=0, symbol=0, side=Side.BUY, kind=OrderType.LIMIT, price=P100, qty=I64),
        dict(id=4, agent=0, symbol=0, side=Side.BUY, kind=OrderType.MARKET, price=0, qty=2**62),
        dict(id=5, agent=0, symbol=0, side=Side.SELL, kind=OrderType.IOC, price=(I64 // 100) * 100, qty=1),
        dict(id=1, agent=1, symbol=0, side=Side.SELL, kind=OrderType.MODIFY, price=P100, qty=I64),
        dict(id=2, agent=2, symbol=0, side=Side.BUY, kind=OrderType.MODIFY, price=(2**62 // 100) * 100, qty=1),
        dict(id=6, agent=0, symbol=0, side=Side.BUY, kind=OrderType.POST_ONLY, price=-(2**63), qty=1),
    ])
    follow = host_batch([dict(id=7, agent=3, symbol=0, side=Side.BUY, kind=OrderType.MARKET, price=0, qty=9)])
    touched, clean = engine_cls([100]), engine_cls([100])
    for e in (touched, clean):
        e.process(setup)
    before = resting(touched)
    r = touched.process(hostile)
    assert r.outcomes.status.tolist() == [Status.REJECTED] * 6
    assert r.outcomes.reason.tolist() == [Reason.BAD_QTY, Reason.BAD_QTY, Reason.BAD_PRICE,
                                          Reason.BAD_QTY, Reason.BAD_PRICE, Reason.BAD_PRICE]
    assert len(r.fills) == 0 and len(r.updates.id) == 0
    assert resting(touched) == before
    same_result(touched.process(follow), clean.process(follow))
    assert resting(touched) == resting(clean)


@pytest.mark.parametrize("override, message", [
    ("market.initial_price=200000",
     "market.initial_price: must be in [0.0001, 100000.0], got 200000.0"),
    ("market.initial_price=1e20",
     "market.initial_price: must be in [0.0001, 100000.0], got 1e+20"),
    ("market.initial_prices=[100.0,100000.01,100.0,100.0,100.0,100.0,100.0,100.0,100.0,100.0]",
     "market.initial_prices: must be in [0.0001, 100000.0], got [100.0, 100000.01, 100.0, 100.0, 100.0, 100.0, "
     "100.0, 100.0, 100.0, 100.0]"),
])
def test_an_opening_price_beyond_the_largest_order_price_is_a_config_error(override, message):
    """A market opening above MAX_PRICE would have every order refused (BAD_PRICE): it
    stops at the start with one line naming the key."""
    from qtg.core.compose import load_config
    from qtg.core.config import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config([override])
    assert str(e.value) == message
    assert load_config(["market.initial_price=100000"]).market.opening_prices()[0] == MAX_PRICE


# ---------------------------------------------------------------------- properties
def test_the_bounds_keep_every_product_and_the_reference_in_step():
    """price x qty within the bounds fits int64 nine times over; the test reference
    engine uses the same bounds as the engines."""
    from tests.systems.matching import engine_reference as ref

    assert MAX_NOTIONAL == MAX_PRICE * MAX_QTY and 9 * MAX_NOTIONAL < 2**63
    assert (ref.MAX_PRICE, ref.MAX_QTY) == (MAX_PRICE, MAX_QTY)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(streams(extreme=True))
def test_engines_match_the_reference_near_the_int64_limits(stream):
    """The engines' differential test (tests/systems/matching/test_engine_properties.py:
    the naive reference, the exact and the fast engine, and a ledger of every order's
    shares) on streams whose prices and quantities are often at or beyond the bounds and
    the int64 limits."""
    ticks, stp, batches = stream
    # the device engine's bounds have their own property test (test_device_book.py)
    run_differential(ticks, stp, batches, device=False)


# Admission, both engines and settlement, tick after tick, on adversarial orders.
N_TICKS = 3
NORMAL_PRICES = [P100 + 100 * k for k in range(-3, 4)]
ODD_PRICES = [MAX_PRICE, MAX_PRICE + 100, 2**62, (I64 // 100) * 100, 0, -100]
NORMAL_QTYS = [1, 2, 5, 10, 50, 100]
BIG_QTYS = [10**6, MAX_QTY // 2, MAX_QTY, MAX_QTY + 1, 2**62, I64, 0, -1]
NEW, CANCEL_SLOT, MODIFY_SLOT = 0, 1, 2


def _order_rows():
    """One row of an agent: (valid, action, kind, side, symbol, price, qty, impostor)."""
    return st.tuples(
        st.sampled_from([True] * 9 + [False]),
        st.sampled_from([NEW] * 6 + [CANCEL_SLOT] * 2 + [MODIFY_SLOT] * 2),
        st.sampled_from([OrderType.LIMIT] * 4 + [OrderType.IOC] * 2 + [OrderType.MARKET, OrderType.POST_ONLY]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(0, 1),
        st.sampled_from(NORMAL_PRICES * 3 + ODD_PRICES),
        st.sampled_from(NORMAL_QTYS + BIG_QTYS + [I64] * 3),
        st.sampled_from([False] * 19 + [True]),
    )


@st.composite
def markets(draw):
    """A 4-agent, 2-symbol market: holdings, limits and N_TICKS ticks of orders."""
    outstanding = draw(st.sampled_from([10**7, 10**12, 2**61]))
    return {
        "outstanding": outstanding,
        "max_short": draw(st.lists(st.sampled_from([0, 100, MAX_QTY, 2**62]), min_size=4, max_size=4)),
        "cash": draw(st.lists(st.sampled_from([0, P100, P100, 10**8, 10**12, 10**18, 2**60]), min_size=4, max_size=4)),
        "position": draw(st.lists(st.sampled_from([0, 5, 100, outstanding // 8]), min_size=8, max_size=8)),
        "ticks": draw(st.lists(st.lists(_order_rows(), min_size=8, max_size=8), min_size=N_TICKS, max_size=N_TICKS)),
        "seeds": draw(st.lists(st.integers(0, 2**32 - 1), min_size=N_TICKS, max_size=N_TICKS)),
    }


@pytest.fixture(scope="module")
def pipeline():
    """A 4-agent, 2-symbol world with short selling (two rows per agent) and its stages,
    jitted once: observe, both admission variants, settle."""
    cfg = make_config(**{"population.market_maker.count": 1, "population.noise.count": 3,
                         "market.symbols": ["ACME", "BOLT"], "market.sectors": []})
    w = build_world(cfg)
    jit = lambda f: jax.jit(f, static_argnums=0)  # noqa: E731
    return w, jit(observe_market), jit(admit_orders), jit(admit_orders_assuming_fits), jit(settle_fills)


def _batch(w, state, rows, tick: int) -> OrderBatch:
    """The tick's batch from drawn rows (agent i's rows are 2i and 2i + 1). New orders get
    the agent's id for the tick and side; CANCEL and MODIFY name the agent's resting order
    on the side (NO_ORDER if none). As strategies do, an agent never leaves two orders
    resting on one side: a new order on a side whose order still rests, with no CANCEL of
    it among the agent's rows, modifies that order instead."""
    n = w.static.n_agents
    slot_id = np.asarray(state.slots.id)
    cols = {k: [] for k in ("valid", "id", "agent", "symbol", "side", "kind", "price", "qty")}
    for agent in range(n):
        mine = rows[2 * agent: 2 * agent + 2]
        cancels = {side for _, action, _, side, *_ in mine if action == CANCEL_SLOT}
        for valid, action, kind, side, sym, price, qty, impostor in mine:
            live = slot_id[agent, side]
            if action == NEW and live != NO_ORDER and side not in cancels:
                action = MODIFY_SLOT
            if action == NEW:
                oid = int(order_id(jnp.asarray(tick), jnp.asarray(agent), side, n))
            else:
                oid = int(live)
                kind = OrderType.CANCEL if action == CANCEL_SLOT else OrderType.MODIFY
            for k, v in zip(cols, (valid, oid, (agent + 1) % n if impostor else agent, sym, side, kind, price, qty)):
                cols[k].append(v)
    return OrderBatch.from_numpy(**cols)


def _totals(state) -> tuple[int, list[int]]:
    """Cash of the agents and the lender, and shares held per symbol, as Python ints."""
    cash = sum(int(c) for c in np.asarray(state.wallet.cash)) + int(state.lender.cash)
    return cash, [int(x) for x in np.asarray(state.wallet.position).sum(axis=0)]


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(markets())
def test_admission_engines_and_settlement_on_adversarial_orders(pipeline, market):
    """Each tick: observe, admit (the fast variant agrees with the exact one whenever it
    says it may), both engines on the admitted orders (identical results and books), settle.
    After every tick cash and shares are conserved exactly, no agent has negative cash, a
    position beyond the shares outstanding, a short beyond its limit or without its
    borrow, and every fill is within the bounds."""
    w, observe, admit, admit_fast, settle = pipeline
    outstanding = jnp.full(2, market["outstanding"], jnp.int64)
    params = w.params.replace(outstanding=outstanding, pool=outstanding // 2,
                              max_short=jnp.asarray(market["max_short"], jnp.int64))
    state = w.state.replace(wallet=w.state.wallet.replace(
        cash=jnp.asarray(market["cash"], jnp.int64),
        position=jnp.asarray(market["position"], jnp.int64).reshape(4, 2)))
    engines = [cls(np.asarray(params.tick_size)) for cls in ENGINES]
    start = _totals(state)
    for t, (rows, seed) in enumerate(zip(market["ticks"], market["seeds"]), start=1):
        batch = _batch(w, state, rows, t)
        _, frame = observe(w.static, params, state, Frame(), KEY)
        frame = frame.replace(orders=jax.tree.map(jnp.asarray, batch))
        _, checked = admit(w.static, params, state, frame, KEY)
        _, quick = admit_fast(w.static, params, state, frame, KEY)
        if bool(quick.borrow_fits):
            for a, b in zip(jax.tree.leaves((checked.orders, checked.reject_reason, checked.rejects)),
                            jax.tree.leaves((quick.orders, quick.reject_reason, quick.rejects))):
                assert np.array_equal(a, b)
        orders = jax.tree.map(np.asarray, checked.orders)
        priority = np.random.default_rng(seed).integers(0, 1 << 32, orders.valid.shape, dtype=np.uint64).astype(np.uint32)
        (exact, _, _, packed), *others = (match_orders(e, orders, priority) for e in engines)
        for (other, _, _, packed_other), engine in zip(others, engines[1:]):
            same_result(exact, other)
            assert all(np.array_equal(packed[k], packed_other[k]) for k in packed)
            assert resting(engines[0]) == resting(engine)
        f = exact.fills
        assert ((f.qty > 0) & (f.qty <= MAX_QTY) & (f.price > 0) & (f.price <= MAX_PRICE)).all()
        assert (exact.outcomes.filled_value >= 0).all() and (exact.outcomes.filled_value <= MAX_NOTIONAL).all()
        matched = checked.replace(**{k: jnp.asarray(v) for k, v in packed.items()})
        state, _ = settle(w.static, params, state, matched, KEY)

        assert _totals(state) == start, f"cash or shares not conserved at tick {t}"
        wallet = jax.tree.map(np.asarray, state.wallet)
        assert (wallet.cash >= 0).all(), f"negative cash at tick {t}"
        assert (wallet.position <= np.asarray(outstanding)).all(), f"position beyond the shares outstanding at tick {t}"
        assert (-wallet.position <= np.asarray(params.max_short)[:, None]).all(), f"short beyond its limit at tick {t}"
        assert (wallet.borrowed >= np.maximum(-wallet.position, 0)).all(), f"short without borrow at tick {t}"
        lender = jax.tree.map(np.asarray, state.lender)
        assert (lender.lent == wallet.borrowed.sum(axis=0)).all() and (lender.claimed <= np.asarray(params.pool)).all()


@pytest.mark.parametrize("engine_cls", ENGINES, ids=lambda c: c.name)
@pytest.mark.parametrize("field, value", [("qty", MAX_QTY + 1), ("price", MAX_PRICE + 100)])
def test_engine_state_with_an_order_beyond_the_bounds_is_refused(engine_cls, field, value):
    """A saved book holding an order the checks would have refused does not load: the
    engine says which order and stays as it was."""
    engine = engine_cls([100])
    engine.process(host_batch([
        dict(id=1, agent=0, symbol=0, side=Side.SELL, kind=OrderType.LIMIT, price=P100, qty=7),
        dict(id=2, agent=1, symbol=0, side=Side.BUY, kind=OrderType.LIMIT, price=P100 - 100, qty=3),
    ]))
    saved = engine.state_dict()
    orders = saved["orders"]
    live = orders["id"] == 1  # the fast engine's pool holds free slots too
    orders[field] = np.where(live, value, orders[field])
    if engine_cls is FastEngine and field == "qty":  # its levels and sides keep totals
        saved["levels"]["qty"] = np.where(saved["levels"]["price"] == P100, value, saved["levels"]["qty"])
    before = resting(engine)
    with pytest.raises(ValueError, match="order 1"):
        engine.load_state_dict(saved)
    assert resting(engine) == before
