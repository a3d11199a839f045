"""Each system alone, on small hand-made worlds, against exact expected values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.agents import NO_ORDER, SLOTS, order_id
from components.frame import Frame
from components.orders import OrderBatch, OrderType, Reason, Side
from qtg.core.world import build_world
from systems.admission import admit_orders
from systems.match import (
    FILL_FIELDS,
    MIN_BUCKET,
    PAIRWISE_MAX,
    UPDATE_FIELDS,
    arrival_order,
    arrival_rows,
    arrive,
    bucket,
    draw_priority,
)
from systems.measure import equity, measure_market
from systems.observe import observe_market
from systems.settle import settle_fills
from systems.strategies import market_maker, noise
from tests.support import make_config

KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def world():
    """4 agents (1 maker, 3 noise traders), one symbol at 100.00, long only."""
    cfg = make_config(**{"population.market_maker.count": 1, "population.noise.count": 3,
                         "market.symbols": ["ACME"], "market.short_selling": False})
    return build_world(cfg)


def batch(rows):
    """OrderBatch (device) from dicts with keys agent, side, kind, price, qty[, id, symbol]."""
    n = len(rows)
    return OrderBatch(
        valid=jnp.ones(n, bool),
        id=jnp.array([r.get("id", 1000 + i) for i, r in enumerate(rows)], jnp.int64),
        agent=jnp.array([r["agent"] for r in rows], jnp.int32),
        symbol=jnp.array([r.get("symbol", 0) for r in rows], jnp.int32),
        side=jnp.array([r["side"] for r in rows], jnp.int8),
        kind=jnp.array([r["kind"] for r in rows], jnp.int8),
        price=jnp.array([r["price"] for r in rows], jnp.int64),
        qty=jnp.array([r["qty"] for r in rows], jnp.int64),
    )


def layout_batch(world, orders):
    """A full-length batch with each order in its agent's own rows (all other rows invalid).

    ``orders`` are dicts as for ``batch``; an agent's k-th order goes in its k-th row.
    """
    rows = [dict(agent=0, side=0, kind=OrderType.CANCEL, price=0, qty=0, valid=False)
            for _ in range(world.static.batch_rows)]
    used = {}
    for o in orders:
        kind = next(k for k in world.static.kinds if k.start <= o["agent"] < k.stop)
        base = kind.batch_start + (o["agent"] - kind.start) * kind.rows_per_agent
        row = base + used.get(o["agent"], 0)
        used[o["agent"]] = used.get(o["agent"], 0) + 1
        rows[row] = dict(o, valid=True, owner_row=row)
    b = batch(rows)
    return b.replace(valid=jnp.array([r["valid"] for r in rows])), [r.get("owner_row") for r in rows if r["valid"]]


def with_holdings(state, cash, position):
    return state.replace(
        wallet=state.wallet.replace(
            cash=jnp.array(cash, jnp.int64), position=jnp.array(position, jnp.int64).reshape(-1, 1)
        )
    )


def with_slot(state, agent, side, oid, price, remaining, symbol=0):
    s = state.slots
    return state.replace(
        slots=s.replace(
            id=s.id.at[agent, side].set(oid),
            price=s.price.at[agent, side].set(price),
            remaining=s.remaining.at[agent, side].set(remaining),
            symbol=s.symbol.at[agent, side].set(symbol),
        )
    )


def run_validate(world, state, orders, impostor=None):
    """Validate ``orders`` placed in their agents' rows; returns valid, reason, counts for
    those rows in the given order. ``impostor=(i, agent)`` rewrites order i's agent field
    after placement (a row claiming to trade for somebody else)."""
    b, rows = layout_batch(world, orders)
    if impostor is not None:
        i, agent = impostor
        b = b.replace(agent=b.agent.at[rows[i]].set(agent))
    _, frame = observe_market(world.static, world.params, state, Frame(), KEY)
    frame = frame.replace(orders=b)
    _, frame = admit_orders(world.static, world.params, state, frame, KEY)
    valid, reason = np.asarray(frame.orders.valid), np.asarray(frame.reject_reason)
    return valid[rows], reason[rows], np.asarray(frame.rejects)


class TestValidate:
    def test_cash_and_shares_limits(self, world):
        state = with_holdings(world.state, [1_000_000, 1_000_000, 0, 0], [0, 10, 10, 0])
        orders = ([
            dict(agent=0, side=Side.BUY, kind=OrderType.LIMIT, price=10_000, qty=100),  # exactly 1,000,000
            dict(agent=1, side=Side.BUY, kind=OrderType.LIMIT, price=10_000, qty=101),  # 1 unit short
            dict(agent=2, side=Side.SELL, kind=OrderType.LIMIT, price=10_000, qty=10),  # all it has
            dict(agent=3, side=Side.SELL, kind=OrderType.IOC, price=10_000, qty=1),  # has none
        ])
        valid, reason, counts = run_validate(world, state, orders)
        assert valid.tolist() == [True, False, True, False]
        assert reason.tolist() == [0, Reason.INSUFFICIENT_CASH, 0, Reason.INSUFFICIENT_SHARES]
        assert counts[Reason.INSUFFICIENT_CASH] == 1 and counts[Reason.INSUFFICIENT_SHARES] == 1

    def test_resting_orders_reserve_and_modify_counts_in_full(self, world):
        state = with_holdings(world.state, [1_000_000, 0, 0, 0], [0, 50, 0, 0])
        state = with_slot(state, 0, Side.BUY, 7 * SLOTS + 0, 10_000, 60)  # reserves 600,000
        state = with_slot(state, 1, Side.SELL, 9 * SLOTS + 1, 10_000, 30)  # reserves 30 shares
        orders = ([
            dict(agent=0, side=Side.BUY, kind=OrderType.MODIFY, id=7 * SLOTS, price=10_000, qty=40),
            dict(agent=1, side=Side.SELL, kind=OrderType.LIMIT, price=10_000, qty=21),
        ])
        valid, reason, _ = run_validate(world, state, orders)
        # 600,000 reserved + 400,000 = 1,000,000 fits; 30 + 21 = 51 > 50 shares does not.
        assert valid.tolist() == [True, False]
        assert reason.tolist() == [0, Reason.INSUFFICIENT_SHARES]

    def test_an_agents_buys_are_summed(self, world):
        state = with_holdings(world.state, [150_000, 0, 0, 0], [0, 0, 0, 0])
        orders = ([
            dict(agent=0, side=Side.BUY, kind=OrderType.LIMIT, price=10_000, qty=10),
            dict(agent=0, side=Side.BUY, kind=OrderType.LIMIT, price=10_000, qty=10),
        ])
        valid, _, _ = run_validate(world, state, orders)
        assert valid.tolist() == [False, False]

    def test_a_row_may_only_trade_for_its_owner(self, world):
        state = with_holdings(world.state, [10**9] * 4, [100] * 4)
        orders = [dict(agent=1, side=Side.BUY, kind=OrderType.LIMIT, price=10_000, qty=1),
                  dict(agent=2, side=Side.BUY, kind=OrderType.LIMIT, price=10_000, qty=1)]
        valid, reason, counts = run_validate(world, state, orders, impostor=(0, 2))
        assert valid.tolist() == [False, True]
        assert reason.tolist() == [Reason.NOT_OWNER, 0]
        assert counts[Reason.NOT_OWNER] == 1

    def test_cancels_always_pass(self, world):
        state = with_holdings(world.state, [0, 0, 0, 0], [0, 0, 0, 0])
        orders = [dict(agent=0, side=Side.BUY, kind=OrderType.CANCEL, price=0, qty=0)]
        valid, _, _ = run_validate(world, state, orders)
        assert valid.tolist() == [True]


def packed_fills(rows):
    f = np.zeros((len(FILL_FIELDS), bucket(len(rows))), np.int64)
    for j, r in enumerate(rows):
        for i, name in enumerate(FILL_FIELDS):
            f[i, j] = r[name]
    return jnp.asarray(f)


def packed_updates(rows):
    """Rows (id, remaining, price, symbol) packed as the match stage packs them."""
    u = np.full((len(UPDATE_FIELDS), bucket(len(rows))), -1, np.int64)
    for j, row in enumerate(rows):
        u[:, j] = row
    return jnp.asarray(u)


class TestSettle:
    def test_fills_move_exact_cash_and_shares(self, world):
        state = with_holdings(world.state, [1_000_000] * 4, [100] * 4)
        frame = Frame(
            fills=packed_fills([
                # agent 1 buys 10 @ 100.01 from resting agent 2
                dict(taker_agent=1, maker_agent=2, symbol=0, side=Side.BUY, price=1_000_100, qty=10),
                # agent 3 sells 5 @ 99.99 into resting agent 0
                dict(taker_agent=3, maker_agent=0, symbol=0, side=Side.SELL, price=999_900, qty=5),
            ]),
            updates=packed_updates([]),
        )
        out, _ = settle_fills(world.static, world.params, state, frame, KEY)
        cash = np.asarray(out.wallet.cash) - 1_000_000
        pos = np.asarray(out.wallet.position)[:, 0] - 100
        assert cash.tolist() == [-4_999_500, -10_001_000, 10_001_000, 4_999_500]
        assert pos.tolist() == [5, 10, -10, -5]

    def test_slot_updates(self, world):
        n = world.static.n_agents
        tick = jnp.asarray(5)
        old = int(order_id(jnp.asarray(3), jnp.asarray(1), Side.BUY, n))
        new = int(order_id(tick, jnp.asarray(1), Side.BUY, n))
        keep = int(order_id(jnp.asarray(2), jnp.asarray(2), Side.SELL, n))
        gone = int(order_id(jnp.asarray(2), jnp.asarray(3), Side.BUY, n))
        state = with_slot(world.state, 1, Side.BUY, old, 990_000, 40)
        state = with_slot(state, 2, Side.SELL, keep, 1_010_000, 25)
        state = with_slot(state, 3, Side.BUY, gone, 980_000, 10)
        stale = int(order_id(jnp.asarray(4), jnp.asarray(0), Side.SELL, n))  # not agent 0's current
        state = with_slot(state, 0, Side.SELL, int(order_id(jnp.asarray(1), jnp.asarray(0), Side.SELL, n)), 1_005_000, 7)
        frame = Frame(
            fills=packed_fills([]),
            # In the tick: old cancelled and a new buy of agent 1 came to rest (18 left);
            # keep modified to 1,020,000 and partly filled (15 left); gone filled out; a
            # stale id of agent 0's sell slot reported gone leaves its current order alone.
            updates=packed_updates([
                (old, 0, 0, 0), (new, 18, 995_000, 0), (keep, 15, 1_020_000, 0), (gone, 0, 0, 0),
                (stale, 0, 0, 0),
            ]),
        )
        out, _ = settle_fills(world.static, world.params, state, frame, KEY)
        s = jax.tree.map(np.asarray, out.slots)
        assert (s.id[1, Side.BUY], s.price[1, Side.BUY], s.remaining[1, Side.BUY]) == (new, 995_000, 18)
        assert (s.id[2, Side.SELL], s.price[2, Side.SELL], s.remaining[2, Side.SELL]) == (keep, 1_020_000, 15)
        assert (s.id[3, Side.BUY], s.remaining[3, Side.BUY]) == (NO_ORDER, 0)
        assert (s.remaining[0, Side.SELL], s.price[0, Side.SELL]) == (7, 1_005_000)


def test_measure_takes_last_fill_per_symbol():
    cfg = make_config(**{"market.symbols": ["A", "B", "C"]})
    w = build_world(cfg)
    frame = Frame(
        fills=packed_fills([
            dict(taker_agent=0, maker_agent=1, symbol=0, side=0, price=1_000_100, qty=3),
            dict(taker_agent=0, maker_agent=1, symbol=1, side=0, price=2_000_000, qty=4),
            dict(taker_agent=0, maker_agent=1, symbol=0, side=1, price=999_900, qty=5),
        ]),
        book=jnp.array([[990_000] * 3, [10] * 3, [1_010_000] * 3, [20] * 3], jnp.int64),
    )
    out, _ = measure_market(w.static, w.params, w.state, frame, KEY)
    m = jax.tree.map(np.asarray, out.market)
    assert m.last.tolist() == [999_900, 2_000_000, 1_000_000]  # C did not trade: unchanged
    assert m.high.tolist() == [1_000_100, 2_000_000, 1_000_000]  # C: a flat bar at its last
    assert m.low.tolist() == [999_900, 2_000_000, 1_000_000]
    assert m.volume.tolist() == [8, 4, 0]
    assert m.bid.tolist() == [990_000] * 3 and m.ask_qty.tolist() == [20] * 3
    assert int(out.tick) == 1


def test_equity_is_the_exact_mark_to_market_value_rounded_once():
    """cash + sum(position * mark), mark = mid (possibly half a unit) when both sides
    quote, else last; compared with exact rational arithmetic on large mixed holdings."""
    from fractions import Fraction

    w = build_world(make_config(**{"market.symbols": ["A", "B", "C"]}))
    n = w.state.wallet.cash.shape[0]
    rng = np.random.default_rng(7)
    # Beyond 2**53 units, where summing in floats rounds more than once (cash + position
    # @ marks in f64 misses about one agent in five here).
    cash = rng.integers(-10**17, 10**17, n)
    position = rng.integers(-10**7, 10**7, (n, 3))
    market = w.state.market.replace(
        bid=jnp.array([1_000_001, 0, 2_500_000], jnp.int64),  # A: mid ends in half a unit
        ask=jnp.array([1_000_004, 990_000, 2_500_100], jnp.int64),  # B: one side only
        last=jnp.array([999_000, 987_654, 2_400_000], jnp.int64),
    )
    state = w.state.replace(
        market=market,
        wallet=w.state.wallet.replace(cash=jnp.asarray(cash, jnp.int64), position=jnp.asarray(position, jnp.int64)),
    )
    marks = [Fraction(1_000_001 + 1_000_004, 2), Fraction(987_654), Fraction(2_500_000 + 2_500_100, 2)]
    expected = [float(int(c) + sum(int(q) * m for q, m in zip(row, marks))) for c, row in zip(cash, position)]
    assert np.asarray(equity(state)).tolist() == expected


class TestStrategies:
    def view(self, world, state):
        """The read phase's frame (view and indicators) as decide receives it."""
        return observe_market(world.static, world.params, state, Frame(), KEY)[1]

    def test_market_maker_quotes_and_skew(self, world):
        kind = world.static.kind("market_maker")
        p = world.params.kinds["market_maker"]
        base = world.state
        o, _ = market_maker.decide(world.static, kind, world.params, p, base, self.view(world, base), KEY)
        price, qty = np.asarray(o.price), np.asarray(o.qty)
        bid, ask = price[0], price[1]
        assert bid % 100 == 0 and ask % 100 == 0 and bid < 1_000_000 < ask
        assert np.asarray(o.kind).tolist() == [OrderType.LIMIT, OrderType.LIMIT]
        assert qty.tolist() == [int(p.quote_size[0])] * 2
        # Long inventory leans both quotes down.
        long = base.replace(wallet=base.wallet.replace(position=base.wallet.position.at[0, 0].add(1500)))
        o2, _ = market_maker.decide(world.static, kind, world.params, p, long, self.view(world, long), KEY)
        assert np.asarray(o2.price)[0] <= bid and np.asarray(o2.price)[1] <= ask
        assert np.asarray(o2.price).sum() < price.sum()

    def test_market_maker_modifies_live_quotes_and_skips_unchanged(self, world):
        kind = world.static.kind("market_maker")
        p = world.params.kinds["market_maker"]
        o, _ = market_maker.decide(world.static, kind, world.params, p, world.state, self.view(world, world.state), KEY)
        bid, ask = (int(x) for x in np.asarray(o.price))
        q = int(p.quote_size[0])
        state = with_slot(world.state, 0, Side.BUY, 0, bid, q)
        state = with_slot(state, 0, Side.SELL, 1, ask + 100, q)
        o2, _ = market_maker.decide(world.static, kind, world.params, p, state, self.view(world, state), KEY)
        assert np.asarray(o2.valid).tolist() == [False, True]  # bid unchanged, ask moved
        assert int(o2.kind[1]) == OrderType.MODIFY and int(o2.id[1]) == 1 and int(o2.price[1]) == ask

    def test_noise_orders_are_affordable_and_on_grid(self, world):
        kind = world.static.kind("noise")
        p = world.params.kinds["noise"].replace(activity=jnp.ones(3))
        poor = with_holdings(world.state, [10**12, 0, 10**12, 10**12], [10**6, 0, 10**6, 10**6])
        for seed in range(20):
            o, _ = noise.decide(world.static, kind, world.params, p, poor, self.view(world, poor), jax.random.key(seed))
            new = jax.tree.map(lambda x: np.asarray(x)[1::2], o)  # rows: cancel, new
            assert (new.price % 100 == 0).all() and (new.price > 0).all()
            assert (new.qty >= 0).all() and (new.qty <= 300 * 3).all()  # the cap, a chartist's size
            # Agent row 1 (noise trader 0) has no cash and no shares: never a valid order.
            assert not new.valid[0]
            assert new.valid[1:].all()


def test_arrival_order_is_a_random_permutation_of_the_valid_rows():
    valid = np.zeros(1000, bool)
    valid[::3] = True
    frame = Frame(orders=OrderBatch.from_numpy(valid=valid, id=np.arange(1000), agent=np.zeros(1000),
                                                 symbol=np.zeros(1000), side=np.zeros(1000),
                                                 kind=np.zeros(1000), price=np.ones(1000), qty=np.ones(1000)))
    prio = [np.asarray(draw_priority(None, None, None, frame, jax.random.key(k))[1].priority) for k in (7, 7, 8)]
    assert prio[0].dtype == np.uint32 and prio[0].shape == (1000,)
    a, b, c = (arrival_order(valid, p) for p in prio)
    assert sorted(a.tolist()) == np.flatnonzero(valid).tolist()  # every valid row once
    assert (a == b).all() and (a != c).any()
    assert (a != np.flatnonzero(valid)).any()  # shuffled, not batch order


@pytest.mark.parametrize("n", [0, 1, 9, PAIRWISE_MAX, PAIRWISE_MAX + 1, 5000])
def test_arrival_order_sorts_by_priority_then_row_on_host_and_device(n):
    """The host order (valid rows only), the device order (valid rows, then the invalid
    ones in row order; by comparisons of every pair up to ``PAIRWISE_MAX`` rows, by a
    sort beyond) and a plain sort by (priority, row) agree, ties included; ``arrive``
    takes exactly those rows."""
    rng = np.random.default_rng(n)
    batch = OrderBatch.from_numpy(
        valid=rng.random(n) < 0.2, id=rng.integers(0, 1 << 40, n), agent=rng.integers(0, 99, n),
        symbol=rng.integers(0, 10, n), side=rng.integers(0, 2, n), kind=rng.integers(0, 6, n),
        price=rng.integers(1, 999, n), qty=rng.integers(1, 99, n),
    )
    for prio in (rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32),
                 rng.integers(0, 3, n).astype(np.uint32),  # many ties
                 np.full(n, (1 << 32) - 1, np.uint32)):
        idx = np.flatnonzero(batch.valid)
        ref = np.array(sorted(idx, key=lambda i: (int(prio[i]), int(i))), np.int64)
        order, arrived = arrive(batch, prio)
        assert np.array_equal(order, ref) and np.array_equal(arrival_order(batch.valid, prio), ref)
        on_device = np.asarray(arrival_rows(jnp.asarray(batch.valid), jnp.asarray(prio)))
        assert np.array_equal(on_device, np.concatenate([ref, np.flatnonzero(~batch.valid)]))
        want = batch.take(ref)
        for name, col in want.__dict__.items():
            got = getattr(arrived, name)
            assert got.dtype == col.dtype and np.array_equal(got, col), name


@pytest.mark.parametrize("n", [0, 1, 64, 65, 1000, 1024, 1025, 5000])
def test_bucket_is_the_next_power_of_two(n):
    b = bucket(n)
    assert b >= max(n, MIN_BUCKET) and b & (b - 1) == 0 and (b == MIN_BUCKET or b // 2 < n)
    assert bucket(n, minimum=64) == max(64, 1 << max(0, n - 1).bit_length())


def test_floor_div_equals_integer_division_near_quotient_boundaries():
    from components.money import floor_div

    rng = np.random.default_rng(3)
    b = rng.integers(1, 10**7, 20_000)
    q = rng.integers(0, 10**8, 20_000)
    # Exact multiples and their neighbours are where a float quotient rounds wrongly.
    a = np.clip(q * b + rng.integers(-1, 2, 20_000), 0, 2**52 - 1)
    a = np.concatenate([a, rng.integers(0, 2**52, 20_000), [0, 2**52 - 1]])
    b = np.concatenate([b, rng.integers(1, 2**40, 20_000), [1, 2**52 - 1]])
    got = np.asarray(floor_div(jnp.asarray(a), jnp.asarray(b)))
    np.testing.assert_array_equal(got, a // b)


def test_order_side_is_id_modulo_slots():
    from components.agents import order_side

    ids = order_id(jnp.arange(50), jnp.arange(50) % 7, jnp.arange(50) % SLOTS, 7)
    np.testing.assert_array_equal(np.asarray(order_side(ids)), np.asarray(ids) % SLOTS)
