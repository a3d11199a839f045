"""Helpers shared by the tests: a small config, a run with its recorder, and a hook that
checks conservation every tick."""

import dataclasses
import functools

import jax
import numpy as np

import qtg  # noqa: F401  (x64 on)
from qtg.bench.soak import Violation, check_world, opening_totals
from qtg.core.config import Config, to_config
from qtg.core.sim import Simulation, TickResult
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder


class InvariantCheck:
    """A hook asserting, every tick, exact conservation of cash (agents plus the lender's
    fees plus the background pool) and of shares (held, the pool's included), the borrow
    ledger, no negative cash (``qtg.bench.soak.check_world``, the soak's check), and no
    short beyond an agent's limit, fills within the tick's bar."""

    def on_start(self, sim):
        self.totals = opening_totals(sim.state)
        self.ticks = 0
        self.max_short_seen = 0

    def on_tick(self, sim, r):
        try:
            check_world(sim, self.totals)
        except Violation as e:
            raise Violation(f"tick {r.tick}: {e}") from None
        w = jax.tree.map(np.asarray, sim.state.wallet)
        max_short = np.asarray(sim.params.max_short)
        assert (-w.position.min(axis=1) <= np.maximum(max_short, 0)).all(), f"short beyond limit at tick {r.tick}"
        self.max_short_seen = max(self.max_short_seen, int(-w.position.min()))
        if len(r.fills):
            assert (r.fills.qty > 0).all() and (r.fills.price > 0).all()
            sym = r.fills.symbol
            assert (r.low[sym] <= r.fills.price).all() and (r.fills.price <= r.high[sym]).all()
        assert (r.low <= r.last).all() and (r.last <= r.high).all()
        self.ticks += 1

    def on_end(self, sim):
        pass


def make_config(**changes) -> Config:
    """Default config with dotted-key changes, e.g. make_config(**{"run.ticks": 50})."""
    cfg = Config()
    for dotted, value in changes.items():
        obj, *path, last = [cfg, *dotted.split(".")]
        for part in path:
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
        if isinstance(obj, dict):
            obj[last] = value
        else:
            setattr(obj, last, value)
    return to_config(cfg)


@dataclasses.dataclass
class Run:
    cfg: Config
    initial: object
    sim: Simulation
    rec: Recorder
    check: InvariantCheck


def run_sim(cfg: Config, ticks: int | None = None, engine=None) -> Run:
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, engine or make_engine_for(cfg, world.static))
    rec, check = Recorder(), InvariantCheck()
    sim.run(cfg.run.ticks if ticks is None else ticks, hooks=[rec, check])
    return Run(cfg, world.state, sim, rec, check)


def same_result(a: TickResult, b: TickResult) -> list[str]:
    """Names of the fields in which two ticks' results differ (every field but the wall
    time; arrays by value and dtype, the fills, orders and outcomes column by column)."""
    differ = []
    for f in dataclasses.fields(TickResult):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "seconds":
            continue
        if dataclasses.is_dataclass(x):
            differ += [f"{f.name}.{g.name}" for g in dataclasses.fields(x)
                       if not (np.array_equal(getattr(x, g.name), getattr(y, g.name))
                               and np.asarray(getattr(x, g.name)).dtype == np.asarray(getattr(y, g.name)).dtype)]
        elif not (np.array_equal(x, y) and np.asarray(x).dtype == np.asarray(y).dtype):
            differ.append(f.name)
    return differ


@functools.cache
def tiered_read_phase():
    """A 2,000-agent world of every tier (``qtg.bench.world``'s "tiers" population, fast
    engine) and the optimised HLO text of its read phase as the tick runs it (admission's
    fast variant, on the committed state a Simulation holds). Shared: the tests that read
    this program (``test_fusion``, ``test_wake``) compile it once per process, and the
    session's persistent cache serves it to the other workers."""
    from components.frame import Frame
    from qtg.bench.world import world_config

    cfg = world_config(2_000, 10, "fast", "tiers", "default")
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    text = sim.segments[0].fast.lower(sim.static, sim.params, sim.state, Frame()).compile().as_text()
    return cfg, world, text
