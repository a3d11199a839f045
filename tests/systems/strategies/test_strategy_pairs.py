"""Pairs traders: the spread z-score against NumPy, entries, holds and exits on crafted
paths for both legs in one tick, and a world run under the conservation invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.frame import Frame
from components.orders import OrderType, Reason, Side
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder
from systems.admission import admit_orders
from systems.indicators import update_indicators
from systems.observe import observe_market
from systems.strategies import pairs
from tests.support import InvariantCheck, make_config

KEY = jax.random.key(0)
LOOKBACK = 20


def world_of(**changes):
    """3 pairs traders on ACME (A) and BOLT (B), nobody else; size 10, max position 100."""
    keys = {"market.symbols": ["ACME", "BOLT"], "population.noise.count": 0,
            "population.market_maker.count": 0, "population.pairs.count": 3,
            "population.pairs.lookback": LOOKBACK, "population.pairs.size": [10, 10],
            "population.pairs.max_position": [100, 100]}
    keys.update({f"population.pairs.{k}": v for k, v in changes.items()})
    return build_world(make_config(**keys))


def fed(world, a, b):
    """The state after one bar per (a, b) close pair; the market's last price is the last bar."""
    spec, ind = world.static.indicators, world.state.indicators
    for x, y in zip(a, b):
        bar = jnp.array([x, y], jnp.float64)
        ind = update_indicators(spec, ind, bar, bar, bar)
    last = jnp.array([round(a[-1] * 100) * 100, round(b[-1] * 100) * 100], jnp.int64)
    market = world.state.market.replace(last=last, high=last, low=last)
    return world.state.replace(indicators=ind, market=market, tick=jnp.asarray(len(a), jnp.int64))


def decide(world, state):
    frame = observe_market(world.static, world.params, state, Frame(), KEY)[1]
    kind = world.static.kind("pairs")
    o = pairs.decide(world.static, kind, world.params, world.params.kinds["pairs"], state, frame, KEY)
    return jax.tree.map(np.asarray, o), frame


def legs(o):
    """The IOC rows of leg A and of leg B (rows per agent: A cancel, A IOC, B cancel, B IOC)."""
    return jax.tree.map(lambda x: x[1::4], o), jax.tree.map(lambda x: x[3::4], o)


def wiggle(n, base, amp=0.2):
    return [base + amp * ((-1) ** i) for i in range(n)]


def test_spread_z_matches_numpy():
    w = world_of(hedge=0.7)
    rng = np.random.default_rng(1)
    a = list(100 + np.cumsum(rng.standard_normal(30)))
    b = list(50 + np.cumsum(rng.standard_normal(30)))
    state = fed(w, a, b)
    z, ok = pairs.spread_z(w.static, state, 0, 1, 0.7, LOOKBACK)
    s = np.log(a[-LOOKBACK:]) - 0.7 * np.log(b[-LOOKBACK:])
    assert bool(ok)
    assert float(z) == pytest.approx((s[-1] - s.mean()) / s.std(), rel=1e-9)
    # Not ready before the lookback is full.
    _, ok = pairs.spread_z(w.static, fed(w, a[:LOOKBACK - 1], b[:LOOKBACK - 1]), 0, 1, 0.7, LOOKBACK)
    assert not bool(ok)


def test_a_rich_spread_shorts_a_and_buys_b_in_one_tick():
    w = world_of()
    state = fed(w, wiggle(LOOKBACK - 1, 100.0) + [110.0], wiggle(LOOKBACK, 100.0))
    o, frame = decide(w, state)
    a, b = legs(o)
    assert a.valid.all() and b.valid.all()
    assert (a.side == Side.SELL).all() and (b.side == Side.BUY).all()
    assert (a.kind == OrderType.IOC).all() and (a.symbol == 0).all() and (b.symbol == 1).all()
    assert (a.qty == 10).all() and (b.qty == 10).all()  # slices of `size`
    # Both legs pass the pre-trade checks (A is a short sale, borrowed).
    f = Frame(view=frame.view, orders=jax.tree.map(jnp.asarray, o))
    _, f = admit_orders(w.static, w.params, state, f, KEY)
    assert (np.asarray(f.reject_reason) == 0).all()


def test_a_cheap_spread_buys_a_and_shorts_b():
    w = world_of()
    state = fed(w, wiggle(LOOKBACK - 1, 100.0) + [90.0], wiggle(LOOKBACK, 100.0))
    a, b = legs(decide(w, state)[0])
    assert (a.side == Side.BUY).all() and (b.side == Side.SELL).all() and a.valid.all() and b.valid.all()


def with_positions(state, a, b):
    pos = state.wallet.position.at[:, 0].set(a).at[:, 1].set(b)
    return state.replace(wallet=state.wallet.replace(position=pos))


def test_holds_between_exit_and_entry_and_exits_near_the_mean():
    w = world_of(entry=2.0, exit=0.5)
    hist = 0.01 * np.random.default_rng(3).standard_normal(LOOKBACK - 1)
    closes_b = [100.0] * LOOKBACK

    def closes_a(last_spread):
        return list(100.0 * np.exp(np.append(hist, last_spread)))

    # The last spread 1.3 deviations above the rest: inside the band, a trade is held.
    held = fed(w, closes_a(hist.mean() + 1.3 * hist.std()), closes_b)
    z, _ = pairs.spread_z(w.static, held, 0, 1, 1.0, LOOKBACK)
    assert 0.5 < float(z) < 2.0
    a, b = legs(decide(w, with_positions(held, -100, 100))[0])
    assert not a.valid.any() and not b.valid.any()
    # Back at the mean: both legs trade toward flat (buy back A, sell B).
    mean = fed(w, closes_a(hist.mean()), closes_b)
    z, _ = pairs.spread_z(w.static, mean, 0, 1, 1.0, LOOKBACK)
    assert abs(float(z)) < 0.5
    a, b = legs(decide(w, with_positions(mean, -100, 100))[0])
    assert a.valid.all() and (a.side == Side.BUY).all() and (b.side == Side.SELL).all()
    # Flat and near the mean: nothing to do.
    a, b = legs(decide(w, mean)[0])
    assert not a.valid.any() and not b.valid.any()


def test_bad_legs_are_refused():
    # Config errors (ConfigError is a ValueError), before any world is built.
    with pytest.raises(ValueError, match="population.pairs.leg_b: must differ"):
        world_of(leg_b=0)
    with pytest.raises(ValueError, match=r"population.pairs.leg_a: a symbol row in \[0, 1\], got 5"):
        world_of(leg_a=5)
    with pytest.raises(ValueError, match="population.pairs.exit: must be below entry"):
        world_of(exit=2.5)


class Positions:
    def on_start(self, sim):
        k = sim.static.kind("pairs")
        self.rows, self.seen = slice(k.start, k.stop), []

    def on_tick(self, sim, r):
        self.seen.append(np.asarray(sim.state.wallet.position)[self.rows, :2])

    def on_end(self, sim):
        pass


def test_world_run_trades_both_legs_within_limits():
    cfg = make_config(**{
        "market.symbols": ["ACME", "BOLT"], "population.market_maker.count": 4,
        "population.noise.count": 40, "population.pairs.count": 6,
        "population.pairs.lookback": 30, "population.pairs.entry": 1.0, "population.pairs.exit": 0.2,
        "population.pairs.max_short": 200, "population.pairs.max_position": [100, 200],
    })
    w = build_world(cfg)
    sim = Simulation(w.static, w.params, w.state, make_engine_for(cfg, w.static))
    rec, check, pos = Recorder(), InvariantCheck(), Positions()
    sim.run(250, hooks=[rec, check, pos])
    assert check.ticks == 250
    seen = np.stack(pos.seen)  # [T, 6, 2]
    assert (seen[..., 0] < 0).any() and (seen[..., 0] > 0).any(), "leg A went both short and long"
    assert (seen >= -200).all()
    max_pos = np.asarray(w.params.kinds["pairs"].a.max_position)
    assert (seen[..., 0] <= max_pos).all() and (seen[..., 1] <= max_pos).all()
    # A pairs trader's legs move in opposite directions.
    assert (np.sign(seen[..., 0]) * np.sign(seen[..., 1]) <= 0).mean() > 0.9
    assert rec.rejects[Reason.INSUFFICIENT_CASH] == 0
