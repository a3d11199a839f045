"""Order latency: a kind with latency k sends at tick t exactly the orders it decided at
tick t - k (validated against the world at t), and nothing in its first k ticks."""

import jax
import numpy as np
import pytest

from components.agents import SLOTS
from components.frame import Frame
from components.orders import OrderType
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from tests.support import InvariantCheck, make_config

LATENCY = 3
TICKS = 80


@pytest.fixture(scope="module")
def delayed_run():
    cfg = make_config(**{
        "market.symbols": ["ACME", "BOLT"],
        "population.trend_follower": {"count": 12, "fast": [3, 4], "slow": [8, 10], "latency": LATENCY},
        "population.market_maker.count": 4,
        "population.noise.count": 30,
    })
    w = build_world(cfg)
    sim = Simulation(w.static, w.params, w.state, make_engine_for(cfg, w.static))
    read = sim.segments[0]
    assert read.names[:2] == ("observe", "decide") and not read.writes
    check = InvariantCheck()
    check.on_start(sim)
    pushed, sent, arrived = {}, {}, {}
    kind = sim.static.kind("trend_follower")
    rows = slice(kind.batch_start, kind.batch_start + kind.batch_rows)
    for _ in range(TICKS):
        t = int(sim.state.tick)
        # The read phase is a pure function of the state: replay it to see this tick's
        # decisions (queued) and what leaves for the engine (validated).
        out = read.call(sim.static, sim.params, sim.state, Frame())
        pushed[t] = jax.tree.map(np.asarray, out.delay_push["trend_follower"])
        sent[t] = jax.tree.map(lambda x: np.asarray(x)[rows], out.orders)
        r = sim.step()
        check.on_tick(sim, r)
        o = sim.host.last_orders
        mine = (o.agent >= kind.start) & (o.agent < kind.stop)
        arrived[t] = jax.tree.map(lambda x: np.asarray(x)[mine], o)
    return sim, kind, pushed, sent, arrived


def test_nothing_arrives_before_the_latency_has_passed(delayed_run):
    _, _, pushed, _, arrived = delayed_run
    for t in range(LATENCY + 1):
        assert len(arrived[t].valid) == 0
    assert sum(len(a.valid) for a in arrived.values()) > 20  # they do trade
    assert sum(int(p.valid.sum()) for p in pushed.values()) > 20


def test_orders_arrive_exactly_latency_ticks_after_their_decision(delayed_run):
    sim, kind, pushed, sent, arrived = delayed_run
    cells = sim.static.n_agents * SLOTS
    for t in range(LATENCY, TICKS):
        decided, out = pushed[t - LATENCY], sent[t]
        # Same rows, field for field; validation at t may only refuse some of them.
        for name in ("id", "agent", "symbol", "side", "kind", "price", "qty"):
            assert np.array_equal(getattr(decided, name), getattr(out, name)), (t, name)
        assert not (out.valid & ~decided.valid).any()
        # What the engine saw from the kind is exactly the surviving rows.
        assert sorted(arrived[t].id.tolist()) == sorted(out.id[out.valid].tolist())
        new = arrived[t].kind != OrderType.CANCEL
        assert (arrived[t].id[new] // cells == t - LATENCY).all()  # ids carry the decision tick


def test_latency_is_validated_in_config():
    from qtg.core.config import ConfigError

    with pytest.raises(ConfigError, match="population.trend_follower.latency: must be in"):
        make_config(**{"population.trend_follower": {"count": 2, "latency": -1}})
