"""The whole tick on the device against the host loop: a rollout of a market with many
strategy kinds, latency and the background pool trades exactly as ``engine=fast`` (its own
file, so that pytest-xdist can run it beside the small-market checks of
``test_rollout.py``)."""

from qtg.core import rollout as ro
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from tests.core.test_rollout import RUN, check_same_run
from tests.support import make_config

KINDS = ("fundamentalist", "news_reactor", "pairs", "sector_rotator", "stop_loss", "vwap_executor")
"""Kinds beside the default market's makers and noise traders in the host comparison: a
valuation trader, news reactors (tier 2, IOC orders), a two-symbol pairs trader, two more
reactive kinds and an executor that modifies its resting orders; with momentum at a latency of 2
ticks and the background pool (tier 3). Each kind's decisions are the same functions in
both loops; what differs is the match, which these exercise with every order type."""


def test_a_rollout_trades_exactly_as_the_host_loop_with_many_kinds():
    """The default market (10 symbols in 5 sectors, news, shorts and borrow, self-trade
    prevention CANCEL_MAKER) with three agents of each of KINDS, latency-delayed momentum
    traders and a background pool of 1,000 (tier 3)."""
    cfg = make_config(**{"engine.name": "fast", "population.background.count": 1000,
                         **{f"population.{k}.count": 3 for k in (*KINDS, "momentum")},
                         "population.momentum.latency": 2})
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    sim.fast_paths = False  # the exact admission only, as on the device (the same results; one compilation)
    results = [sim.step() for _ in range(12)]
    state, out = RUN(world.static, world.params, ro.with_books(world.state, world.static, 256), 12,
                     int(sim.engine.stp))
    check_same_run(sim, results, state, out)
