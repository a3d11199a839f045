"""Helpers shared by the tests: a small config, a run with its recorder, and a hook that
checks conservation every tick."""

import dataclasses

import jax
import numpy as np

import qtg  # noqa: F401  (x64 on)
from qtg.core.config import Config, to_config
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder


class InvariantCheck:
    """A hook asserting, every tick, exact conservation of cash (agents plus the lender's
    fees plus the background pool) and of shares (held, the pool's included, plus lent plus
    the lender's unlent float == outstanding), the borrow ledger, and no negative cash or
    short beyond an agent's limit."""

    @staticmethod
    def pool(sim):
        """The background pool's cash and positions (0 without a pool)."""
        bg = sim.state.background
        if bg is None:
            return 0, 0
        return int(bg.cash), np.asarray(bg.position)

    def on_start(self, sim):
        pool_cash, pool_shares = self.pool(sim)
        self.cash = int(np.asarray(sim.state.wallet.cash).sum()) + int(sim.state.lender.cash) + pool_cash
        self.shares = np.asarray(sim.state.wallet.position).sum(axis=0) + pool_shares
        self.outstanding = np.asarray(sim.params.outstanding)
        self.unlent = self.outstanding - self.shares  # the lender's holdings before lending
        self.ticks = 0
        self.max_short_seen = 0

    def on_tick(self, sim, r):
        w = jax.tree.map(np.asarray, sim.state.wallet)
        lender = jax.tree.map(np.asarray, sim.state.lender)
        pool_cash, pool_shares = self.pool(sim)
        held = w.position.sum(axis=0) + pool_shares
        assert int(w.cash.sum()) + int(lender.cash) + pool_cash == self.cash, f"cash not conserved at tick {r.tick}"
        assert (held == self.shares).all(), f"shares not conserved at tick {r.tick}"
        # Lending moves shares from the lender's float to a borrower, who sells them on.
        lent = w.borrowed.sum(axis=0)
        assert (lender.lent == lent).all(), f"ledger out of step at tick {r.tick}"
        assert (held + (self.unlent - lent) + lent == self.outstanding).all()
        assert (lent <= lender.claimed).all() and (lender.claimed <= np.asarray(sim.params.pool)).all()
        assert (w.borrowed >= np.maximum(-w.position, 0)).all(), f"short without borrow at tick {r.tick}"
        assert w.cash.min() >= 0, f"negative cash at tick {r.tick}"
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
