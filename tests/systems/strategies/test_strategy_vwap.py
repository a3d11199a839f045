"""VWAP executors: child sizes against the profile, affordability, a world run, the report."""

import dataclasses
import json
from fractions import Fraction

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.agents import NO_ORDER
from components.frame import Frame
from components.orders import OrderType, Reason, Side
from qtg.core.config import ConfigError
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder
from systems.admission import admit_orders
from systems.decide import decide_orders
from systems.observe import observe_market
from systems.strategies import vwap
from tests.support import InvariantCheck, make_config

KEY = jax.random.key(0)
PRICE = 1_000_000  # opening price 100.00 in units; tick 100 units
BUY_PRICE, SELL_PRICE = 1_020_000, 980_000  # 2% collar through the reference


@pytest.fixture(scope="module")
def world():
    """1 market maker (row 0) and 3 executors (rows 1-3) on one symbol at 100.00.

    Executor 0 buys 100 shares, executor 1 sells 100, both flat over ticks 10-17 with
    children of at most 20; executor 2 buys 1,000 on the u_shape profile over ticks
    10-19 with no effective child cap.
    """
    cfg = make_config(**{
        "market.symbols": ["ACME"],
        "population.market_maker.count": 1,
        "population.noise.count": 0,
        "population.vwap_executor": {"count": 3},
    })
    w = build_world(cfg)
    p = w.params.kinds["vwap_executor"].replace(
        buy=jnp.array([True, False, True]),
        total=jnp.array([100, 100, 1_000], jnp.int64),
        start=jnp.array([10, 10, 10], jnp.int64),
        horizon=jnp.array([8, 8, 10], jnp.int64),
        max_child=jnp.array([20, 20, 10_000], jnp.int64),
        collar=jnp.full(3, 0.02),
        profile=jnp.array([0, 0, 1], jnp.int32),
        initial_position=jnp.array([0, 100, 0], jnp.int64),
    )
    params = w.params.replace(kinds={**w.params.kinds, "vwap_executor": p})
    cash = jnp.full(4, 10**13, jnp.int64)  # plenty, unless a test says otherwise
    state = w.state.replace(
        wallet=w.state.wallet.replace(cash=cash, position=jnp.array([[2_000], [0], [100], [0]]))
    )
    return w.static, params, state


def at(state, tick, executed=(0, 0, 0), cash=None):
    """``state`` at ``tick`` with each executor having done ``executed`` shares."""
    e = np.asarray(executed)
    pos = state.wallet.position.at[1:, 0].set(jnp.asarray([e[0], 100 - e[1], e[2]]))
    wallet = state.wallet.replace(position=pos)
    if cash is not None:
        wallet = wallet.replace(cash=wallet.cash.at[1:].set(jnp.asarray(cash, jnp.int64)))
    return state.replace(wallet=wallet, tick=jnp.asarray(tick, jnp.int64))


def decide(world, state):
    """(cancel rows, child rows) of the executors as NumPy OrderBatches."""
    static, params, _ = world
    frame = observe_market(static, params, state, Frame(), KEY)[1]
    o = vwap.decide(static, static.kind("vwap_executor"), params, params.kinds["vwap_executor"],
                    state, frame, KEY)
    o = jax.tree.map(np.asarray, o)
    assert o.qty.shape == (2 * 3,)
    return jax.tree.map(lambda x: x[0::2], o), jax.tree.map(lambda x: x[1::2], o)


def child_qty(world, state):
    """Child size per executor (0 where the row is not valid)."""
    _, child = decide(world, state)
    return np.where(child.valid, child.qty, 0).tolist()


def flat_target(total, start, horizon, tick):
    return total * min(max(tick + 1 - start, 0), horizon) // horizon


def u_target(total, start, horizon, tick):
    x = Fraction(min(max(tick + 1 - start, 0), horizon), horizon)
    return int(total * (x / 2 + ((2 * x - 1) ** 3 + 1) / 4) // 1)


class TestDecide:
    def test_nothing_before_start_or_after_the_horizon(self, world):
        _, _, base = world
        for tick in (1, 5, 9, 20, 50):
            cancel, child = decide(world, at(base, tick, (0, 0, 0)))
            assert not child.valid.any() and not cancel.valid.any(), tick
        # With the whole order left, nothing after the last tick (17; 19 for the third,
        # which finishes there).
        assert child_qty(world, at(base, 18)) == [0, 0, 828]
        assert child_qty(world, at(base, 19)) == [0, 0, 1_000]

    def test_flat_children_are_the_shortfall_capped_by_max_child(self, world):
        _, _, base = world
        # (tick, executed) -> child for the flat buyer and seller (total 100, 8 ticks from 10).
        cases = [
            (10, 0, 12),  # target 100 * 1 // 8 = 12
            (11, 12, 13),  # target 25
            (12, 20, 17),  # target 37
            (13, 20, 20),  # target 50, shortfall 30 capped at 20
            (14, 70, 0),  # ahead of the profile: wait
            (15, 70, 5),  # target 75
            (17, 90, 10),  # last tick: finish the remainder
            (17, 70, 20),  # last tick, remainder 30 capped at 20
            (16, 100, 0),  # done
        ]
        for tick, done, expected in cases:
            q = child_qty(world, at(base, tick, (done, done, 0)))
            assert q[:2] == [expected, expected], (tick, done, q)

    def test_flat_matches_reference_on_a_grid(self, world):
        _, _, base = world
        for tick in range(8, 20):
            for done in (0, 7, 33, 61, 99, 100):
                target = flat_target(100, 10, 8, tick)
                expected = min(max(target - done, 0), 20) if 10 <= tick < 18 else 0
                assert child_qty(world, at(base, tick, (done, done, 0)))[:2] == [expected] * 2

    def test_u_shape_matches_its_formula(self, world):
        _, _, base = world
        targets = [u_target(1_000, 10, 10, t) for t in range(10, 20)]
        # 1000 * (x / 2 + ((2x - 1)^3 + 1) / 4) at x = 0.1 .. 1.0
        assert targets == [172, 296, 384, 448, 500, 552, 616, 704, 828, 1_000]
        done = 0
        for tick, target in zip(range(10, 20), targets):
            assert child_qty(world, at(base, tick, (0, 0, done)))[2] == target - done, tick
            done = target
        slices = np.diff([0, *targets])
        assert slices[0] > 100 and slices[-1] > 100 and slices[4] < 100  # more at both ends

    def test_orders_are_ioc_on_the_grid_through_the_reference(self, world):
        _, _, base = world
        cancel, child = decide(world, at(base, 12, (0, 0, 0)))
        assert child.valid.all()
        assert child.kind.tolist() == [OrderType.IOC] * 3
        assert child.side.tolist() == [Side.BUY, Side.SELL, Side.BUY]
        assert child.price.tolist() == [BUY_PRICE, SELL_PRICE, BUY_PRICE]
        assert (child.price % 100 == 0).all()
        assert child.agent.tolist() == [1, 2, 3]
        assert not cancel.valid.any()  # nothing resting

    def test_caps_by_cash_and_unreserved_shares_and_cancels_resting(self, world):
        static, params, base = world
        # Buyer 0 can pay for 5 shares at the collar price; seller 1 has 97 of its 100
        # shares reserved by a resting sell order; buyer 2 has a resting buy reserving cash.
        cash = [6 * BUY_PRICE - 1, 10**13, 10 * BUY_PRICE + 10 * PRICE]
        state = at(base, 13, (0, 0, 0), cash=cash)
        s = state.slots
        slots = s.replace(
            id=s.id.at[2, Side.SELL].set(77).at[3, Side.BUY].set(78),
            price=s.price.at[2, Side.SELL].set(PRICE + 500).at[3, Side.BUY].set(PRICE),
            remaining=s.remaining.at[2, Side.SELL].set(97).at[3, Side.BUY].set(10),
        )
        state = state.replace(slots=slots)
        cancel, child = decide(world, state)
        assert np.where(child.valid, child.qty, 0).tolist() == [5, 3, 10]
        assert cancel.valid.tolist() == [False, True, True]
        assert cancel.id[1:].tolist() == [77, 78] and cancel.side[1:].tolist() == [Side.SELL, Side.BUY]
        assert (cancel.kind == OrderType.CANCEL).all()
        frame = observe_market(static, params, state, Frame(), KEY)[1]
        frame = decide_orders(static, params, state, frame, KEY)[1]
        frame = admit_orders(static, params, state, frame, KEY)[1]
        rejects = np.asarray(frame.rejects)
        assert rejects[Reason.INSUFFICIENT_CASH] == 0 and rejects[Reason.INSUFFICIENT_SHARES] == 0
        assert np.asarray(frame.orders.valid)[2:].sum() == 5  # 3 children + 2 cancels pass

    def test_never_overspends_on_random_states(self, world):
        static, params, base = world
        rng = np.random.default_rng(1)

        @jax.jit
        def rejects(state):
            frame = observe_market(static, params, state, Frame(), KEY)[1]
            frame = decide_orders(static, params, state, frame, KEY)[1]
            return admit_orders(static, params, state, frame, KEY)[1].rejects

        for _ in range(30):
            tick = int(rng.integers(10, 18))
            done = rng.integers(0, 101, 3)
            state = at(base, tick, done, cash=rng.integers(0, 30 * BUY_PRICE, 3))
            s = state.slots
            live = rng.random(2) < 0.5
            rem = rng.integers(1, 100, 2)
            state = state.replace(slots=s.replace(
                id=s.id.at[1, Side.BUY].set(np.where(live[0], 50, NO_ORDER)).at[2, Side.SELL].set(
                    np.where(live[1], 51, NO_ORDER)),
                price=s.price.at[1, Side.BUY].set(PRICE).at[2, Side.SELL].set(PRICE),
                remaining=s.remaining.at[1, Side.BUY].set(int(rem[0])).at[2, Side.SELL].set(
                    int(min(rem[1], 100 - done[1]))),
            ))
            r = np.asarray(rejects(state))
            assert r[Reason.INSUFFICIENT_CASH] == 0 and r[Reason.INSUFFICIENT_SHARES] == 0

    def test_compiles_once_across_ticks(self, world):
        static, params, base = world
        kind = static.kind("vwap_executor")
        fn = jax.jit(chex.assert_max_traces(vwap.decide, n=1), static_argnums=(0, 1))
        frame = observe_market(static, params, base, Frame(), KEY)[1]
        for tick in (9, 10, 17, 30):
            fn(static, kind, params, params.kinds["vwap_executor"], at(base, tick, (5, 5, 5)), frame, KEY)
        chex.clear_trace_counter()


class Fills:
    """Hook keeping every fill of the executors' rows, with its tick, and each symbol's
    traded notional and volume per tick."""

    def __init__(self, rows: range):
        self.rows = rows

    def on_start(self, sim):
        self.qty = {a: 0 for a in self.rows}
        self.notional = {a: 0 for a in self.rows}  # units
        self.ticks = {a: set() for a in self.rows}
        self.market: list[tuple[int, np.ndarray, np.ndarray]] = []  # (tick, notional[S], volume[S])

    def on_tick(self, sim, r):
        f = r.fills
        s = sim.static.n_symbols
        notional, volume = np.bincount(f.symbol, f.price * f.qty, s), np.bincount(f.symbol, f.qty, s)
        self.market.append((r.tick, notional, volume))
        for i in range(len(f)):
            for a in {int(f.taker_agent[i]), int(f.maker_agent[i])}:
                if a in self.qty:
                    self.qty[a] += int(f.qty[i])
                    self.notional[a] += int(f.price[i]) * int(f.qty[i])
                    self.ticks[a].add(r.tick)

    def on_end(self, sim):
        pass

    def market_vwap(self, first: int, stop: int) -> np.ndarray:
        """Per-symbol VWAP of all fills in ticks [first, stop), in currency."""
        notional = sum(n for t, n, _ in self.market if first <= t < stop)
        volume = sum(v for t, _, v in self.market if first <= t < stop)
        return notional / volume / 10_000


START, HORIZON = 20, 150


@dataclasses.dataclass
class WorldRun:
    initial: object  # WorldState at the start
    sim: Simulation
    check: InvariantCheck
    fills: Fills
    kind: object  # KindStatic of the executors


@pytest.fixture(scope="module", params=["flat", "u_shape"])
def world_run(request):
    """200 ticks: 2 makers, 10 noise traders and 4 executors (ticks 20-169)."""
    cfg = make_config(**{
        "population.vwap_executor": {
            "count": 4, "total": [200, 400], "start": [START, START], "horizon": [HORIZON, HORIZON],
            "max_child": [50, 50], "profile": request.param,
        },
        "market.symbols": ["ACME"], "population.market_maker.count": 2, "population.noise.count": 10,
        "run.ticks": 200,
    })
    w = build_world(cfg)
    kind = w.static.kind("vwap_executor")
    sim = Simulation(w.static, w.params, w.state, make_engine_for(cfg, w.static))
    run = WorldRun(w.state, sim, InvariantCheck(), Fills(range(kind.start, kind.stop)), kind)
    sim.run(200, hooks=[Recorder(), run.check, run.fills])
    return run


class TestWorldRun:
    def report(self, run):
        rows = slice(run.kind.start, run.kind.stop)
        w0, w = run.initial.wallet, run.sim.state.wallet
        return vwap.execution_report(
            run.sim.params.kinds["vwap_executor"],
            np.asarray(w0.cash)[rows], np.asarray(w.cash)[rows], np.asarray(w.position)[rows],
            run.fills.market_vwap(START, START + HORIZON),
        )

    def test_invariants_hold(self, world_run):
        assert world_run.check.ticks == 200  # InvariantCheck asserted every tick

    def test_every_executor_completes_within_its_horizon(self, world_run):
        # Tolerance 2% of the parent order: the remainder of the last tick is one IOC
        # against whatever the book holds when it arrives (arrival order in a tick is
        # random, so noise traders may have emptied that side first), and nothing is sent
        # after the horizon. 2% is 3 ticks of flat volume over 150 ticks.
        rep = self.report(world_run)
        for a, agent in zip(world_run.fills.rows, rep["agents"]):
            assert agent["executed"] <= agent["target"]
            assert agent["completion"] >= 0.98, agent
            assert world_run.fills.ticks[a] <= set(range(START, START + HORIZON)), a
        assert rep["all"]["completion"] >= 0.99
        assert {a["side"] for a in rep["agents"]} <= {"buy", "sell"}

    def test_achieved_vwap_matches_the_fills(self, world_run):
        rep = self.report(world_run)
        json.dumps(rep)  # JSON-able
        market = world_run.fills.market_vwap(START, START + HORIZON)[0]
        for a, agent in zip(world_run.fills.rows, rep["agents"]):
            qty, notional = world_run.fills.qty[a], world_run.fills.notional[a]
            assert qty > 0 and agent["executed"] == qty
            assert agent["vwap"] == notional / qty / 10_000  # exact: same integers
            assert agent["market_vwap"] == market
            sign = 1 if agent["side"] == "buy" else -1
            assert agent["slippage_bps"] == pytest.approx(sign * (agent["vwap"] / market - 1) * 1e4)


def test_report_on_known_numbers():
    p = vwap.Params(
        symbol=jnp.array([0, 1, 0], jnp.int32),
        buy=jnp.array([True, False, True]),
        total=jnp.array([100, 200, 50], jnp.int64),
        start=jnp.ones(3, jnp.int64), horizon=jnp.ones(3, jnp.int64),
        max_child=jnp.ones(3, jnp.int64), collar=jnp.zeros(3), profile=jnp.zeros(3, jnp.int32),
        initial_position=jnp.array([0, 200, 0], jnp.int64),
    )
    # Buyer paid 10,050.00 for 100; seller got 9,900.00 for 100 of 200; third did nothing.
    initial = np.array([10**9, 10**9, 10**9])
    cash = initial + np.array([-100_500_000, 99_000_000, 0])
    position = np.array([[100, 0], [0, 100], [0, 0]])
    rep = vwap.execution_report(p, initial, cash, position, np.array([100.0, 100.0]))
    a = rep["agents"]
    assert [x["executed"] for x in a] == [100, 100, 0]
    assert [x["completion"] for x in a] == [1.0, 0.5, 0.0]
    assert a[0]["vwap"] == 100.5 and a[1]["vwap"] == 99.0 and a[2]["vwap"] is None
    assert a[0]["slippage_bps"] == pytest.approx(50.0) and a[1]["slippage_bps"] == pytest.approx(100.0)
    assert a[2]["slippage_bps"] is None
    assert rep["all"]["slippage_bps"] == pytest.approx(75.0)  # (50 + 100) / 20,000 notional
    assert rep["buy"]["executed"] == 100 and rep["buy"]["target"] == 150
    assert rep["sell"]["completion"] == 0.5 and rep["all"]["notional"] == 19_950.0
    json.dumps(rep)


class TestConfig:
    def test_population_entry_is_typed_and_validated(self):
        cfg = make_config(**{"population.vwap_executor": {"count": 4, "profile": "u_shape"}})
        entry = cfg.population["vwap_executor"]
        assert isinstance(entry, vwap.Config) and entry.count == 4 and entry.profile == "u_shape"
        assert entry.total == vwap.Config().total

    @pytest.mark.parametrize("key, value", [
        ("buy_fraction", 1.5), ("start", [0, 5]), ("horizon", [10, 5]), ("max_child", [0, 3]),
        ("collar", 0.9), ("total", [5]),
    ])
    def test_bad_values_are_refused(self, key, value):
        with pytest.raises(ConfigError, match=f"population.vwap_executor.{key}"):
            make_config(**{"population.vwap_executor": {"count": 2, key: value}})

    def test_unknown_profile_is_refused(self):
        with pytest.raises(ConfigError, match="population.vwap_executor.profile: unknown profile 'smile'"):
            make_config(**{"population.vwap_executor": {"count": 2, "profile": "smile"}})

    def test_holdings_make_the_parent_order_feasible(self):
        cfg = make_config(**{"population.vwap_executor": {"count": 40}, "seed": 3, "market.symbols": ["ACME"]})
        w = build_world(cfg)
        k = w.static.kind("vwap_executor")
        p = jax.tree.map(np.asarray, w.params.kinds["vwap_executor"])
        pos = np.asarray(w.state.wallet.position)[k.start:k.stop, 0]
        assert p.buy.any() and (~p.buy).any()
        assert (pos[~p.buy] == p.total[~p.buy]).all() and (pos[p.buy] == 0).all()
        assert (pos == p.initial_position).all()
        cash = np.asarray(w.state.wallet.cash)[k.start:k.stop]
        assert (cash[p.buy] >= p.total[p.buy] * BUY_PRICE).all()
