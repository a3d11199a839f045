"""Every experiment of ``conf/experiment`` at small shapes, the whole tick on the device
(``DeviceSimulation``) against the host loop with ``engine=fast``: every tick's result
(fills, orders in arrival order, outcomes, bars, news records), the final state and the
books are the same. Each experiment keeps what makes it itself (its scheduled news, a
withdrawal of liquidity under a sell program, every strategy kind, a market of two
symbols); its events are moved into the first ticks and its counts made small.
Experiments of the same shapes share one compilation of each loop. (``large``, two
symbols of makers and noise traders, runs through ``python -m qtg.run`` in
``test_device_run.py``, on that file's world.)"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.fundamentals import EVENT_FIELDS, EVENT_KINDS
from qtg.core.compose import load_config
from qtg.core.sim import DeviceSimulation, Simulation
from qtg.core.world import build_world, make_engine_for
from tests.core.test_rollout import resting, resting_of, same_state
from tests.support import same_result

TICKS = 24
pytestmark = pytest.mark.slow  # each test runs a world through the device tick (two shapes, one compile each)

SMALL = ["population.market_maker.count=10", "population.noise.count=20", f"run.ticks={TICKS}",
         "engine.capacity=64"]
"""Ten symbols in five sectors (the default market), one maker a symbol and 20 noise traders."""
EVERY_KIND = SMALL + ["population.vwap_executor.count=2", "population.vwap_executor.start=[2,2]",
                      "population.vwap_executor.horizon=[16,16]", "population.momentum.latency=2",
                      "population.background.count=200"] + [
    f"population.{k}.count=1" for k in ("momentum", "trend_follower", "macd_cross", "bollinger_reversion",
                                        "pairs", "fundamentalist", "sector_rotator")] + [
    f"population.{k}.count=2" for k in ("news_reactor", "stop_loss")]
"""Every kind, one or two agents of each: the tournament's (the shapes of
``strategy_tournament`` and of ``liquidity_crash``: makers, noise and VWAP executors), the
tier 2 news reactors (IOC orders) and stop-loss holders, a sector rotator, momentum at a
latency of 2 ticks and a background pool of 200 (tier 3); the executors start at tick 2. Each kind's decisions are the
same functions in both loops; what differs is the match, which these exercise with every
order type (an executor modifies its resting orders). Those two experiments also get one
``rl_policy`` agent (a trained policy's kind; the ``rl_policy`` fixture)."""

EXPERIMENTS = {
    # one scheduled event each: the same shapes, one compilation for the three
    "sector_shock": SMALL + ["news.scheduled=[{kind:sector,tick:6,target:tech,size:-0.2}]"],
    "rate_hike": SMALL + ["news.scheduled=[{kind:rate,tick:6,size:0.01}]"],
    "earnings_season": SMALL + ["news.scheduled=[{kind:earnings,tick:6,target:DYNE,size:-0.1}]"],
    # every strategy kind, and the sell program meets the makers' withdrawal at tick 6, for 12 ticks
    "liquidity_crash": EVERY_KIND + ["population.market_maker.withdraw=[6,18]", "population.vwap_executor.start=[6,6]",
                                     "population.vwap_executor.horizon=[12,12]",
                                     "population.vwap_executor.total=[3000,3000]",
                                     "population.vwap_executor.shares=3000"],
    "strategy_tournament": EVERY_KIND,
}


def run_both(overrides: list[str]):
    """The host loop with ``fast`` and the device tick on the same world, tick by tick:
    (host simulation, device simulation, the host's results)."""
    cfg = load_config(overrides)
    world = build_world(cfg)
    host = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    host.fast_paths = False  # the exact admission only, as on the device (the same results; one compilation)
    engine = make_engine_for(load_config(overrides + ["engine=device"]), world.static)
    device = DeviceSimulation(world.static, world.params, world.state, engine)
    results = []
    for _ in range(cfg.run.ticks):
        a, b = host.step(), device.step()
        assert same_result(a, b) == [], a.tick
        results.append(a)
    assert same_state(host.state, device.state) == []
    assert resting(engine.books) == resting_of(host.engine)
    assert engine.stats()["book_full"] == 0
    return host, device, results


@pytest.fixture(scope="module")
def rl_policy(tmp_path_factory):
    """A trading policy that always asks to buy its full size (the overrides of one
    ``rl_policy`` agent trading it): the trained-policy kind among every kind."""
    from qtg.rl.checkpoint import write_policy
    from systems.features import SPEC
    from systems.policy import meta_for

    layers = [(np.zeros((SPEC.size, 5), np.float32), np.eye(5, dtype=np.float32)[4])]
    path = write_policy(tmp_path_factory.mktemp("policy") / "policy.npz", layers, meta_for("trading", 5))
    return ["population.rl_policy.count=1", f"population.rl_policy.policy={path}"]


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_each_experiment_trades_on_the_device_as_on_the_host(name, rl_policy):
    every = name in ("liquidity_crash", "strategy_tournament")
    host, _, results = run_both([f"+experiment={name}", *EXPERIMENTS[name], *(rl_policy if every else [])])
    fills = sum(len(r.fills) for r in results)
    assert fills > TICKS  # a market that trades
    static = host.static
    if name in ("sector_shock", "rate_hike", "earnings_season"):  # the scheduled event fired, and moved fair value
        events = results[6].events
        valid, kind = events[EVENT_FIELDS.index("valid")], events[EVENT_FIELDS.index("kind")]
        fired = [EVENT_KINDS[int(k)] for v, k in zip(valid, kind) if v == 1.0]
        assert fired == [{"sector_shock": "sector", "rate_hike": "rate", "earnings_season": "earnings"}[name]]
        assert not np.array_equal(results[5].fair, results[6].fair)
    if name in ("liquidity_crash", "strategy_tournament"):  # the executors traded, and the pool sent orders
        vwap = static.kind("vwap_executor")
        takers = np.concatenate([r.fills.taker_agent for r in results])
        assert ((takers >= vwap.start) & (takers < vwap.stop)).any()
        assert sum(int((r.orders.agent >= static.background.agent_base).sum()) for r in results) > 0
        policy = static.kind("rl_policy")  # the trained policy's agent sent its orders
        assert sum(int(((r.orders.agent >= policy.start) & (r.orders.agent < policy.stop)).sum()) for r in results) > 0


@settings(max_examples=4, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2**31 - 1), borrow=st.sampled_from([0.0, 0.001]), size=st.sampled_from([-0.3, 0.15]))
def test_seeds_and_values_of_the_same_shapes_trade_alike_on_both(seed, borrow, size):
    """Seeds, borrow rates and event sizes of ``sector_shock``'s small shapes (no new
    compilation): the device tick and the host loop trade alike."""
    run_both(["+experiment=sector_shock", *SMALL, f"seed={seed}", f"market.borrow_rate={borrow}",
              f"news.scheduled=[{{kind:sector,tick:6,target:tech,size:{size}}}]"])
