"""systems.features: the observation contract, against a NumPy reference of each feature
from the state and the read phase's frame, on a market where learners hold, buy and sell."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.frame import Frame
from components.money import SCALE
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from systems.features import INDICATORS, SPEC, features
from systems.observe import observe_market
from systems.strategies import learner
from tests.support import make_config


def reference(state, frame, rows, symbol, max_position) -> np.ndarray:
    """Each feature of SPEC by its definition (the module's table), in NumPy."""
    v = jax.tree.map(np.asarray, frame.view)
    m = jax.tree.map(np.asarray, state.market)
    ind = frame.indicators
    out = []
    for i, s in zip(np.asarray(rows), np.asarray(symbol)):
        ref, fair = float(v.ref[s]), float(v.fair[s])
        bq = float(m.bid_qty[s]) if v.bid[s] > 0 else 0.0
        aq = float(m.ask_qty[s]) if v.ask[s] > 0 else 0.0
        ema = {p: (float(ind.ema_at(p)[0][s]) * SCALE, bool(ind.ema_at(p)[1][s])) for p in (5, 20)}
        rsi, rsi_ready = float(ind.rsi_at(14)[0][s]), bool(ind.rsi_at(14)[1][s])
        shares = float(state.wallet.position[i, s])
        cash = float(state.wallet.cash[i])
        k = list(np.asarray(rows)).index(i)
        raw = [
            np.log(fair / ref) if fair > 0 and ref > 0 else 0.0,
            float(v.spread[s]) / ref if ref > 0 else 0.0,
            (bq - aq) / (bq + aq) if bq + aq > 0 else 0.0,
            float(v.news[s]),
            np.log(ref / ema[5][0]) if ema[5][1] and ema[5][0] > 0 else 0.0,
            np.log(ref / ema[20][0]) if ema[20][1] and ema[20][0] > 0 else 0.0,
            rsi / 100 - 0.5 if rsi_ready else 0.0,
            shares / max(int(max_position[k]), 1),
            cash / (cash + abs(shares) * ref),
        ]
        out.append([np.clip(x * f.scale, -f.clip, f.clip) for x, f in zip(raw, SPEC.features)])
    return np.asarray(out, np.float32)


@pytest.fixture(scope="module")
def market():
    """Two symbols, makers and noise traders, and four learners (two a symbol, shorts
    allowed) that buy, sell and hold in turn for 40 ticks: positions long and short."""
    cfg = make_config(**{"market.symbols": ["ACME", "BOLT"], "market.sectors": [],
                         "population.market_maker.count": 4, "population.noise.count": 16,
                         "population.learner": {"count": 4, "max_short": 100}})
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    kind = world.static.kind(learner.KIND)
    for t in range(40):
        sim.state = learner.with_actions(sim.state, [4, 0, 2, 3] if t < 20 else [0, 4, 1, 2])
        sim.step()
    return world, sim, kind


def test_each_feature_is_its_definition(market):
    _, sim, kind = market
    _, frame = observe_market(sim.static, sim.params, sim.state, Frame(), jax.random.key(0))
    p = sim.params.kinds[learner.KIND]
    rows = kind.start + jnp.arange(kind.count)
    got = np.asarray(features(sim.state, frame, rows, p.trade.symbol, p.trade.max_position))
    want = reference(sim.state, frame, rows, p.trade.symbol, np.asarray(p.trade.max_position))
    assert got.shape == (4, SPEC.size) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    pos = got[:, SPEC.names.index("position")]
    assert (pos > 0).any() and (pos < 0).any()  # long and short learners
    assert (got[:, SPEC.names.index("rsi")] != 0).all()  # 40 bars: every series is ready


def test_learners_trade_as_their_actions_ask(market):
    """Learner 1 sold for 20 ticks (down to its short limit) then bought; learner 2 held, then sold half its size a tick."""
    _, sim, kind = market
    w = np.asarray(sim.state.wallet.position)[kind.start:kind.stop]
    sym = np.asarray(sim.params.kinds[learner.KIND].trade.symbol)
    held = w[np.arange(4), sym]
    assert held[1] > 0 and held[2] < 0  # sold 20 ticks then bought 20: net long; held then sold: short
    assert (np.abs(held) <= np.asarray(sim.params.kinds[learner.KIND].trade.max_position) + 100).all()


def test_the_spec_is_versioned_json_and_names_every_column():
    d = json.loads(json.dumps(SPEC.to_dict()))
    assert d["version"] == 2 and [f["name"] for f in d["features"]] == list(SPEC.names)
    assert len(set(SPEC.names)) == SPEC.size == 9
    assert INDICATORS.ema == (5, 20) and INDICATORS.rsi == (14,)


def test_wish_rounds_toward_hold_alike_both_ways():
    params = learner.Params(trade=None, levels=jnp.asarray([2, 2, 2, 2, 2, 3]))
    params = params.replace(trade=type("T", (), {"size": jnp.asarray([51] * 6)})())
    got = learner.wish(params, jnp.asarray([0, 1, 2, 3, 4, 1]))
    assert got.tolist() == [-51, -25, 0, 25, 51, -34]
