"""The scale presets: their tiers add up to what they promise, and a short seed_100k run
conserves cash and shares exactly and repeats bit for bit."""

import pytest

from qtg.core.compose import load_config
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder
from qtg.reports.summary import tiers_summary
from systems.strategies import registry
from tests.support import InvariantCheck

TICKS = 12


def _tiers(cfg) -> dict[int, int]:
    out = {1: 0, 2: 0, 3: 0}
    for name, k in cfg.population.items():
        out[getattr(registry()[name], "TIER", 1)] += k.count
    return out


@pytest.mark.parametrize("preset, scale", [("seed_100k", 1), ("million", 10)])
def test_presets_hold_the_promised_tiers(preset, scale):
    cfg = load_config([f"population={preset}"])
    assert _tiers(cfg) == {1: 7_500 * scale, 2: 5_000 * scale, 3: 87_500 * scale}
    assert len(cfg.market.symbols) == 10
    # Every tier 1 kind takes part (but the learners, whose actions come from outside the
    # tick, and the trained policies, which need a policy file).
    tier1 = {n for n, mod in registry().items() if getattr(mod, "TIER", 1) == 1
             and not getattr(mod, "EXTERNAL", False) and not getattr(mod, "TRAINED", False)}
    assert all(cfg.population[n].count > 0 for n in tier1)


def test_small_is_the_default():
    assert _tiers(load_config([])) == {1: 150, 2: 0, 3: 0}


@pytest.fixture(scope="module")
def seed_100k():
    cfg = load_config(["population=seed_100k"])
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    rec, check = Recorder(), InvariantCheck()
    sim.run(TICKS, hooks=[rec, check])
    return cfg, world, sim, rec, check


@pytest.mark.slow
def test_seed_100k_conserves_cash_and_shares_every_tick(seed_100k):
    cfg, world, sim, rec, check = seed_100k
    assert check.ticks == TICKS  # InvariantCheck asserted conservation (the pool included) each tick
    assert sum(rec.fills_per_tick) > 1_000
    tiers = tiers_summary(sim)
    assert (tiers["tier_1"]["agents"], tiers["tier_2"]["agents"], tiers["tier_3"]["members"]) == (7_500, 5_000, 87_500)
    assert tiers["total"] == 100_000
    assert tiers["tier_3"]["orders_sent"] > 0


@pytest.mark.slow
def test_seed_100k_is_deterministic(seed_100k):
    cfg, world, _, rec, _ = seed_100k
    # A second simulation of the opening world with a fresh engine: it runs the programs
    # the first compiled (a Simulation commits its state as the first did, so the jitted
    # segments see the same kind of arguments and compile nothing again).
    again = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    rec2 = Recorder()
    again.run(TICKS, hooks=[rec2])
    assert rec2.fill_hash == rec.fill_hash
    assert rec2.fills_per_tick == rec.fills_per_tick
