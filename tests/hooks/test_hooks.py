"""The hook protocol: run control (gate, stop requests, signals), on_end on every exit path,
the metrics hook, the hook registry and its config checks."""

import json
import os
import signal

import numpy as np
import pytest

from qtg.core.compose import load_config
from qtg.core.config import HOOK_NAMES, ConfigError
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import HOOKS, HookContext, Metrics, make_hooks
from qtg.run import stop_on_signals
from systems.measure import marks


@pytest.fixture(scope="module")
def sim():
    cfg = load_config(["population.noise.count=12", "population.market_maker.count=4",
                       "market.symbols=[ACME,BOLT]", "hooks=[]"])
    w = build_world(cfg)
    return Simulation(w.static, w.params, w.state, make_engine_for(cfg, w.static))


class Log:
    """Records the calls it gets; optionally acts at a given tick."""

    def __init__(self, act=None, at=None):
        self.calls, self.results, self.act, self.at = [], [], act, at

    def on_start(self, sim):
        self.calls.append(("start", sim.tick))

    def on_tick(self, sim, r):
        self.calls.append(("tick", r.tick))
        self.results.append(r)
        if self.act is not None and r.tick == self.at:
            self.act(sim)

    def on_end(self, sim):
        self.calls.append(("end", sim.tick))


def test_run_calls_hooks_in_order_and_marks_match_the_state(sim):
    t0 = sim.tick
    log = Log()
    assert sim.run(5, hooks=[log]) == 5
    assert log.calls == [("start", t0)] + [("tick", t0 + i) for i in range(5)] + [("end", t0 + 5)]
    assert sim.stop_reason is None
    r = log.results[-1]
    np.testing.assert_array_equal(r.marks, np.asarray(marks(sim.state)))
    assert r.orders.id.shape == r.outcomes.status.shape == (r.accepted,)


def test_gate_false_stops_at_the_boundary(sim):
    t0 = sim.tick
    calls = []

    def gate(s):
        calls.append(s.tick)
        return s.tick < t0 + 3

    log = Log()
    assert sim.run(10, hooks=[log], gate=gate) == 3
    assert sim.tick == t0 + 3 and calls == [t0, t0 + 1, t0 + 2, t0 + 3]
    assert log.calls[-1] == ("end", t0 + 3) and sim.stop_reason == "stopped"


def test_request_stop_from_a_hook_finishes_that_tick(sim):
    t0 = sim.tick
    log = Log(act=lambda s: s.request_stop("enough"), at=t0 + 1)
    assert sim.run(10, hooks=[log]) == 2
    assert sim.tick == t0 + 2 and sim.stop_reason == "enough"
    assert sim.run(1, hooks=[]) == 1 and sim.stop_reason is None  # a new run starts afresh


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_cleanly_and_the_handlers_are_restored(sim, signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = sim.tick
    log = Log(act=lambda s: os.kill(os.getpid(), signum), at=t0 + 2)
    with stop_on_signals(sim) as state:  # the entry point's handlers (the simulation installs none)
        assert sim.run(10, hooks=[log]) == 3
    name = signal.Signals(signum).name
    assert sim.stop_reason == f"interrupted ({name})" and log.calls[-1] == ("end", t0 + 3)
    assert state.signal == signum
    assert {s: signal.getsignal(s) for s in before} == before


def test_on_end_runs_when_a_hook_fails(sim):
    class Boom(Exception):
        pass

    def fail(s):
        raise Boom("hook failed")

    t0 = sim.tick
    first, second = Log(), Log(act=fail, at=t0 + 1)
    with pytest.raises(Boom):
        sim.run(5, hooks=[first, second])
    assert first.calls[-1] == ("end", t0 + 2) and second.calls[-1] == ("end", t0 + 2)


def test_on_end_only_for_started_hooks(sim):
    class BadStart(Log):
        def on_start(self, sim):
            raise RuntimeError("cannot start")

    ok, bad, never = Log(), BadStart(), Log()
    with pytest.raises(RuntimeError, match="cannot start"):
        sim.run(3, hooks=[ok, bad, never])
    assert ok.calls[-1][0] == "end" and bad.calls == [] and never.calls == []


def test_metrics_lines_and_summary(sim, tmp_path):
    m, log = Metrics(tmp_path, every=4), Log()
    sim.run(4 - sim.tick % 4, hooks=[])  # start on a multiple of 4
    t0 = sim.tick
    sim.run(10, hooks=[m, log])
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["tick"] for x in lines] == [t0 + 3, t0 + 7, t0 + 9] and [x["ticks"] for x in lines] == [4, 4, 2]
    rs = log.results
    assert lines[0]["orders_per_tick"] == pytest.approx(np.mean([r.accepted for r in rs[:4]]), abs=0.05 + 1e-9)
    assert lines[2]["volume"]["ACME"] == int(sum(r.volume[0] for r in rs[8:]))
    assert lines[2]["mark"]["BOLT"] == pytest.approx(rs[-1].marks[1] / 10_000, abs=1e-4)
    summary = json.loads((tmp_path / "metrics.json").read_text())
    assert summary["ticks"] == 10
    busy = sum(r.seconds for r in rs)
    assert summary["orders_per_s"] == pytest.approx(sum(r.accepted for r in rs) / busy, rel=1e-3)
    assert summary["ms_per_tick"]["median"] == pytest.approx(1000 * np.median([r.seconds for r in rs]), abs=1e-3)
    # Resumable: its cursor carries the whole run's counts.
    again = Metrics(None)
    again.load_state_dict(m.state_dict())
    assert again.summary()["ticks"] == 10 and again.orders == sum(r.accepted for r in rs)


def test_hook_registry_and_config_checks(tmp_path):
    cfg = load_config(["hooks=[progress,metrics]"])
    hooks = make_hooks(cfg.hooks, HookContext(cfg, tmp_path))
    assert [h.name for h in hooks] == ["progress", "metrics"]
    assert set(HOOKS) == {"progress", "metrics", "storage", "tui"}
    assert tuple(HOOKS) == HOOK_NAMES  # the names the config accepts are the factories there are
    with pytest.raises(ValueError, match="unknown hook"):
        make_hooks(["nope"], HookContext(cfg, tmp_path))
    bad = {
        "hooks=[storage,nope]": "hooks: unknown hook 'nope'; allowed: metrics, progress, storage, tui",
        "hooks=[metrics,metrics]": "hooks: each hook at most once",
        "storage.candles=[60,5,300]": "storage.candles: three increasing intervals",
        "storage.batch_ticks=0": "storage.batch_ticks: must be in [1, 100000], got 0",
        "storage.file=a/b.sqlite": "storage.file: a file name inside the run directory",
        "ui.name=web": "ui.name: unknown ui 'web'; allowed: none, tui",
        "ui.fps=0": "ui.fps: must be in [0.1, 60.0], got 0.0",
        "snapshot.every=-1": "snapshot.every: must be in [0, 1000000000000000], got -1",
        f"resume={tmp_path}/missing.qtgsnap": f"resume: no snapshot file at '{tmp_path}/missing.qtgsnap'",
    }
    for override, message in bad.items():
        with pytest.raises(ConfigError) as e:
            load_config([override])
        assert str(e.value).startswith(message), (override, str(e.value))
