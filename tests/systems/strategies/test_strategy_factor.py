"""Factor long-short traders: the score against NumPy, long the top and short the bottom on
crafted inputs, cash handed out in rank order, the rebalance stagger, bad configs, and a
world run under the conservation invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.frame import Frame
from components.orders import OrderType, Reason, Side, Status
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder
from systems.admission import admit_orders
from systems.indicators import update_indicators
from systems.observe import observe_market
from systems.strategies import factor
from tests.support import InvariantCheck, make_config

KEY = jax.random.key(0)
KIND = factor.KIND
LOOKBACK = 10
SYMBOLS = ["A", "B", "C", "D", "E"]
UPDATE = jax.jit(update_indicators, static_argnums=0)  # one compile, not one eager op per bar


def world_of(**changes):
    """Factor traders alone on a 5-symbol market; 2 long, 2 short, size 10, rebalance 1."""
    keys = {"market.symbols": SYMBOLS, "population.noise.count": 0, "population.market_maker.count": 0,
            f"population.{KIND}.count": 3, f"population.{KIND}.lookback": LOOKBACK,
            f"population.{KIND}.size": [10, 10], f"population.{KIND}.max_position": [5000.0, 5000.0],
            f"population.{KIND}.top": 2, f"population.{KIND}.bottom": 2, f"population.{KIND}.rebalance": 1}
    keys.update({f"population.{KIND}.{k}": v for k, v in changes.items()})
    return build_world(make_config(**keys))


def fed(world, closes, fair, tick=None):
    """The state after one bar per column of ``closes`` [S, T] (currency); the market's last
    price (so the reference, with an empty book) is the last close; fair values in currency."""
    spec, ind = world.static.indicators, world.state.indicators
    closes = np.asarray(closes, np.float64)
    for t in range(closes.shape[1]):
        bar = jnp.asarray(closes[:, t])
        ind = UPDATE(spec, ind, bar, bar, bar)
    last = jnp.asarray(np.round(closes[:, -1] * 100).astype(np.int64) * 100)
    market = world.state.market.replace(last=last, high=last, low=last)
    fund = world.state.fundamentals.replace(fair=jnp.asarray(np.asarray(fair, np.float64) * 10_000))
    t = closes.shape[1] if tick is None else tick
    return world.state.replace(indicators=ind, market=market, fundamentals=fund, tick=jnp.asarray(t, jnp.int64))


def decide(world, state):
    frame = observe_market(world.static, world.params, state, Frame(), KEY)[1]
    kind = world.static.kind(KIND)
    o = factor.decide(world.static, kind, world.params, world.params.kinds[KIND], state, frame, KEY)
    return jax.tree.map(np.asarray, o), frame


def per_agent(o, n_symbols=len(SYMBOLS)):
    """Rows as [agent, symbol] (one IOC row per symbol)."""
    return jax.tree.map(lambda x: x.reshape(-1, n_symbols), o)


def flat_closes(n=LOOKBACK, price=100.0):
    return np.full((len(SYMBOLS), n), price)


def test_score_matches_numpy():
    w = world_of(value_weight=0.5, momentum_weight=1.5, volatility_weight=2.0)
    rng = np.random.default_rng(7)
    closes = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal((5, 25)), axis=1))
    fair = 100 * (1 + 0.2 * rng.standard_normal(5))
    state = fed(w, closes, fair)
    frame = observe_market(w.static, w.params, state, Frame(), KEY)[1]
    p = w.params.kinds[KIND]

    # NumPy reference on the last LOOKBACK closes.
    c = closes[:, -LOOKBACK:]
    ref = np.round(closes[:, -1] * 100) * 100
    raw = np.stack([fair * 10_000 / ref, np.log(c[:, -1] / c[:, 0]), np.diff(np.log(c), axis=1).std(axis=1)])
    z = (raw - raw.mean(axis=1, keepdims=True)) / raw.std(axis=1, keepdims=True)
    want = 0.5 * z[0] + 1.5 * z[1] - 2.0 * z[2]

    close, full = factor.closes(w.static, state, LOOKBACK)
    np.testing.assert_allclose(np.asarray(close), c, rtol=1e-15)
    got_raw, ok = factor.factors(close, frame.view.fair, frame.view.ref)
    assert bool(full) and bool(ok)
    np.testing.assert_allclose(np.asarray(got_raw), raw, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(factor.zscore(got_raw)), z, rtol=1e-9, atol=1e-12)
    score, ready = factor.score(w.static, p, state, frame.view)
    assert bool(ready)
    np.testing.assert_allclose(np.asarray(score), want, rtol=1e-9, atol=1e-12)
    order = np.argsort(-want, kind="stable")
    expect_rank = np.empty(5, np.int64)
    expect_rank[order] = np.arange(5)
    assert (np.asarray(factor.ranks(score)) == expect_rank).all()
    # A factor with no spread across symbols is 0 everywhere, not NaN.
    assert (np.asarray(factor.zscore(jnp.full((2, 5), 3.0))) == 0).all()
    # Ties go to the lower row.
    assert np.asarray(factor.ranks(jnp.array([1.0, 2.0, 1.0, 2.0, 0.0]))).tolist() == [2, 0, 3, 1, 4]


def test_not_ready_before_the_window_fills():
    w = world_of()
    state = fed(w, flat_closes(LOOKBACK - 1), [120, 80, 100, 140, 60])
    o, _ = decide(w, state)
    assert not o.valid.any()


def test_longs_the_top_and_shorts_the_bottom():
    # Value only: fair / price ranks D (1.4), A (1.2), C (1.0), B (0.8), E (0.6).
    w = world_of(momentum_weight=0.0, volatility_weight=0.0)
    state = fed(w, flat_closes(), [120, 80, 100, 140, 60])
    o, frame = decide(w, state)
    a = per_agent(o)
    assert (a.symbol == np.arange(5)).all() and (a.kind == OrderType.IOC).all()
    assert (a.agent == w.static.kind(KIND).start + np.arange(3)[:, None]).all()
    assert a.valid[:, [0, 1, 3, 4]].all() and not a.valid[:, 2].any()  # C is flat
    assert (a.side[:, [0, 3]] == Side.BUY).all() and (a.side[:, [1, 4]] == Side.SELL).all()
    assert (a.qty[:, [0, 1, 3, 4]] == 10).all()  # slices of `size`
    # Prices collar (2%) through the reference, on the tick grid.
    assert (a.price[:, 0] == 1_020_000).all() and (a.price[:, 1] == 980_000).all()
    # Every row passes the pre-trade checks (the shorts are borrowed).
    f = Frame(view=frame.view, orders=jax.tree.map(jnp.asarray, o))
    _, f = admit_orders(w.static, w.params, state, f, KEY)
    assert (np.asarray(f.reject_reason) == 0).all()

    # Momentum only, low volatility first: the steadiest risers long, the fallers short.
    w = world_of(value_weight=0.0, momentum_weight=1.0, volatility_weight=0.0)
    drift = np.array([0.02, -0.01, 0.0, 0.01, -0.03])
    closes = 100 * np.exp(drift[:, None] * np.arange(LOOKBACK))
    a = per_agent(decide(w, fed(w, closes, [100] * 5))[0])
    assert (a.side[:, [0, 3]] == Side.BUY).all() and (a.side[:, [1, 4]] == Side.SELL).all()
    assert not a.valid[:, 2].any()


def test_volatility_enters_with_a_minus_sign():
    # Same flat end points (no momentum), different wiggles: the calm symbols rank high.
    w = world_of(value_weight=0.0, momentum_weight=0.0, volatility_weight=1.0, top=1, bottom=1)
    amp = np.array([0.5, 4.0, 1.0, 0.1, 2.0])
    closes = 100 + amp[:, None] * np.array([0, 1, -1] * 3 + [0])[None, :]
    a = per_agent(decide(w, fed(w, closes, [100] * 5))[0])
    assert a.valid[:, 3].all() and (a.side[:, 3] == Side.BUY).all()  # D: the calmest
    assert a.valid[:, 1].all() and (a.side[:, 1] == Side.SELL).all()  # B: the wildest
    assert not a.valid[:, [0, 2, 4]].any()


def test_trades_toward_targets_from_held_positions():
    w = world_of(momentum_weight=0.0, volatility_weight=0.0)
    state = fed(w, flat_closes(), [120, 80, 100, 140, 60])
    # Targets at price 100 and value 5,000: +50 A, -50 B, 0 C, +50 D, -50 E.
    pos = np.array([50, -45, 30, -20, -50])
    wallet = state.wallet.replace(position=jnp.asarray(np.tile(pos, (3, 1))))
    a = per_agent(decide(w, state.replace(wallet=wallet))[0])
    assert not a.valid[:, [0, 4]].any()  # at target
    assert (a.side[:, 1] == Side.SELL).all() and (a.qty[:, 1] == 5).all()  # the last 5 short
    assert (a.side[:, 2] == Side.SELL).all() and (a.qty[:, 2] == 10).all()  # toward flat
    assert (a.side[:, 3] == Side.BUY).all() and (a.qty[:, 3] == 10).all()  # cover, then long


def test_cash_goes_to_the_best_ranked_buys_first():
    w = world_of(momentum_weight=0.0, volatility_weight=0.0, cash=1_500.0)
    state = fed(w, flat_closes(), [120, 80, 100, 140, 60])
    o, frame = decide(w, state)
    a = per_agent(o)
    # D ranks first: 10 at 102.00 (1,020); A gets what is left: 480 // 102 = 4 shares.
    assert (a.qty[:, 3] == 10).all() and (a.qty[:, 0] == 4).all()
    f = Frame(view=frame.view, orders=jax.tree.map(jnp.asarray, o))
    _, f = admit_orders(w.static, w.params, state, f, KEY)
    assert (np.asarray(f.reject_reason) == 0).all()


def test_rebalances_are_staggered():
    w = world_of(count=4, rebalance=4)
    p = w.params.kinds[KIND]
    assert np.asarray(p.phase).tolist() == [0, 1, 2, 3]
    for t in range(8, 12):
        o, _ = decide(w, fed(w, flat_closes(), [120, 80, 100, 140, 60], tick=t))
        trading = per_agent(o).valid.any(axis=1)
        assert trading.tolist() == [i == t % 4 for i in range(4)]
    # Fewer agents than ticks in the interval: spread evenly.
    assert np.asarray(world_of(count=3, rebalance=10).params.kinds[KIND].phase).tolist() == [0, 3, 6]


@pytest.mark.parametrize("changes, message", [
    ({"top": 3, "bottom": 3},
     r"population.factor_long_short.bottom: top \+ bottom must be <= the number of symbols \(5\)"),
    ({"top": 0, "bottom": 0}, r"population.factor_long_short.top: top \+ bottom must be >= 1"),
    ({"value_weight": 0.0, "momentum_weight": 0.0, "volatility_weight": 0.0},
     "population.factor_long_short.value_weight: at least one factor weight must be non-zero"),
    ({"momentum_weight": float("nan")}, "population.factor_long_short.momentum_weight: must be a finite number, got nan"),
    ({"lookback": 2}, r"population.factor_long_short.lookback: must be in \[3, 1000000000000000\], got 2"),
    ({"rebalance": 0}, r"population.factor_long_short.rebalance: must be in \[1, 1000000000000000\], got 0"),
    ({"size": [0, 5]}, r"population.factor_long_short.size: must be in \[1, 1000000000000000\], got \[0, 5\]"),
])
def test_bad_configs_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        world_of(**changes)


class Watch:
    """Per tick: each factor trader's positions within the largest value target seen so far
    (floor(max_position / ref) shares), its orders only on its rebalance ticks, none of them
    refused by the engine; and its positions at the end."""

    def on_start(self, sim):
        self.k = k = sim.static.kind(KIND)
        p = sim.params.kinds[KIND]
        self.value, self.phase, self.every = np.asarray(p.max_position), np.asarray(p.phase), int(p.rebalance)
        self.bound = np.zeros((k.count, sim.static.n_symbols), np.int64)
        self._widen(sim)
        self.long_and_short, self.orders, self.refused, self.off_phase = [], 0, 0, 0

    def _widen(self, sim):
        # The reference the next tick's decisions see (as in observe_market).
        m = jax.tree.map(np.asarray, sim.state.market)
        ref = np.where((m.bid > 0) & (m.ask > 0), (m.bid + m.ask) / 2.0, m.last.astype(np.float64))
        self.bound = np.maximum(self.bound, np.floor(self.value[:, None] / ref[None, :]).astype(np.int64))

    def on_tick(self, sim, r):
        k = self.k
        pos = np.asarray(sim.state.wallet.position)[k.start:k.stop]
        assert (np.abs(pos) <= self.bound).all(), f"position beyond its target at tick {r.tick}"
        o, out = sim.host.last_orders, sim.host.last_match.outcomes
        mine = (o.agent >= k.start) & (o.agent < k.stop)
        self.orders += int(mine.sum())
        self.refused += int((mine & (out.status == Status.REJECTED)).sum())
        self.off_phase += int((r.tick % self.every != self.phase[o.agent[mine] - k.start]).sum())
        self.long_and_short = ((pos > 0).any(axis=1) & (pos < 0).any(axis=1))
        self._widen(sim)

    def on_end(self, sim):
        pass


def test_world_run_holds_longs_and_shorts_within_limits():
    cfg = make_config(**{
        "population.noise.count": 40, f"population.{KIND}.count": 5, f"population.{KIND}.lookback": 20,
        f"population.{KIND}.rebalance": 5, f"population.{KIND}.max_short": 200,
    })
    w = build_world(cfg)
    sim = Simulation(w.static, w.params, w.state, make_engine_for(cfg, w.static))
    rec, check, watch = Recorder(), InvariantCheck(), Watch()
    sim.run(200, hooks=[rec, check, watch])
    assert check.ticks == 200
    assert watch.orders > 100 and watch.refused == 0 and watch.off_phase == 0
    assert watch.long_and_short.all(), "every factor trader ends long some symbols and short others"
    k = w.static.kind(KIND)
    pos = np.asarray(sim.state.wallet.position)[k.start:k.stop]
    assert pos.min() >= -200
    for reason in (Reason.INSUFFICIENT_CASH, Reason.SHORT_LIMIT, Reason.NO_BORROW):
        assert rec.rejects[reason] == 0
