"""Orders whose money arithmetic would overflow int64: admission, both engines, settlement.

The cases of issue 18, part 2, each reproduced: an agent whose per-agent sums wrap in
admission, the exact engine raising after it mutated its book while the fast one wraps,
and then property tests with quantities and prices near the int64 limits fed to
admission, both engines and settlement, checking that the engines agree exactly and that
cash and shares are conserved with no agent beyond its cash, shares or borrow.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qtg  # noqa: F401  (x64 on)
from components.agents import order_id
from components.frame import Frame
from components.orders import OrderBatch, OrderType, Reason, Side, Status
from qtg.core.world import build_world
from systems.admission import admit_orders
from systems.match import match_orders
from systems.matching import ExactEngine, FastEngine
from systems.observe import observe_market
from systems.settle import settle_fills
from tests.support import make_config

KEY = jax.random.key(0)
I64 = 2**63 - 1
P100 = 1_000_000  # 100.00 in units
ENGINES = (ExactEngine, FastEngine)


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


def admitted(world, state, batch: OrderBatch) -> Frame:
    """The read phase with ``batch`` as the tick's orders: observe, then admit."""
    _, frame = observe_market(world.static, world.params, state, Frame(), KEY)
    _, frame = admit_orders(world.static, world.params, state, frame.replace(orders=batch), KEY)
    return frame


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
    result, arrival, _, packed = match_orders(engine, orders, seed=0)
    out, _ = settle_fills(w.static, w.params, state, frame.replace(**{k: jnp.asarray(v) for k, v in packed.items()}), KEY)

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
    """The default market (10 symbols) with one factor long-short trader: one row per
    symbol, ten rows for one agent; shares outstanding far above any order."""
    cfg = make_config(**{"population.factor_long_short.count": 1, "market.shares_outstanding": 10**15})
    return build_world(cfg)


def test_the_sum_of_many_rows_within_the_bounds_saturates(factor_world):
    """Ten buys of 10**9 shares at 100,000.00 (each 10**18 units, within the bounds) sum
    to 10**19, which wraps to a negative number: an agent with 100.00 passed. The sum
    now saturates at the int64 maximum and every row is refused."""
    w = factor_world
    agent = w.static.kind("factor_long_short").start
    state = holding(w.state, agent, P100)
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
    """Both engines give the same result on batches whose sums overflow int64 (the rows
    beyond the bounds are refused with BAD_QTY), and neither raises."""
    batch = host_batch([dict(dict(symbol=0, kind=OrderType.LIMIT), **r) for r in rows])
    engines = [cls([100]) for cls in ENGINES]
    results = [e.process(batch) for e in engines]
    same_result(*results)
    assert resting(engines[0]) == resting(engines[1])
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
