"""The whole tick on the device against the host loop: a market with many strategy kinds,
latency and the background pool trades exactly as ``engine=fast`` (its own file, so that
pytest-xdist can run it beside the small-market checks of ``test_rollout.py``)."""

from qtg.core.sim import DeviceSimulation, Simulation
from qtg.core.world import build_world, make_engine_for
from systems.matching import make_engine
from tests.core.test_rollout import resting, resting_of, same_state
from tests.support import make_config, same_result

KINDS = ("fundamentalist", "news_reactor", "pairs", "sector_rotator", "stop_loss", "vwap_executor")
"""Kinds beside the default market's makers and noise traders in the host comparison: a
valuation trader, news reactors (tier 2, IOC orders), a two-symbol pairs trader, two more
reactive kinds and an executor that modifies its resting orders; with momentum at a latency of 2
ticks and the background pool (tier 3). Each kind's decisions are the same functions in
both loops; what differs is the match, which these exercise with every order type."""


def test_the_device_tick_reports_and_trades_exactly_as_the_host_loop_with_many_kinds():
    """The default market (10 symbols in 5 sectors, news, shorts and borrow, self-trade
    prevention CANCEL_MAKER) with three agents of each of KINDS, latency-delayed momentum
    traders and a background pool of 1,000 (tier 3): every tick's result (fills, orders in
    arrival order, outcomes, bars, refusals) and the final state and books are the same."""
    cfg = make_config(**{"engine.name": "fast", "population.background.count": 1000,
                         **{f"population.{k}.count": 3 for k in (*KINDS, "momentum")},
                         "population.momentum.latency": 2})
    world = build_world(cfg)
    host = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    host.fast_paths = False  # the exact admission only, as on the device (the same results; one compilation)
    engine = make_engine("device", cfg.market.ticks(), host.engine.stp, capacity=256)
    device = DeviceSimulation(world.static, world.params, world.state, engine)
    fills = 0
    for _ in range(12):
        a, b = host.step(), device.step()
        assert same_result(a, b) == [], a.tick
        fills += len(a.fills)
    assert fills > 24 and engine.stats()["book_full"] == 0 and engine.stats()["fills"] == fills
    assert same_state(host.state, device.state) == []
    assert resting(engine.books) == resting_of(host.engine)
