"""``python -m qtg.run engine=device``: the whole tick on the device
(``qtg.core.sim.DeviceSimulation``) writes the same trades, candles and fill hash as
``engine=fast``, and resumes from its own snapshot onto the same fills."""

import shutil
import sqlite3
from pathlib import Path

import pytest

from qtg.core.compose import load_config
from qtg.core.sim import DeviceSimulation, _device_step
from qtg.run import run_job

pytestmark = pytest.mark.slow  # a fast and a device run of this world (the device tick compiles)

WORLD = ["market.symbols=[ACME,BOLT]", "market.sectors=[]", "population.market_maker.count=4",
         "population.noise.count=10", "population.momentum.count=2", "storage.batch_ticks=5"]
RUN = ["run.chart=false", "run.table=false", "run.agents_table=false", "hooks=[metrics,storage]"]
TICKS, EVERY = 30, 10
DEVICE = ["engine=device", "engine.capacity=32"]


def rows(run_dir: Path, table: str) -> list[tuple]:
    con = sqlite3.connect(run_dir / "qtg.sqlite")
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[dict, Path]]:
    """The same 30-tick run with each engine (summary, run directory); the device run
    writes snapshots at ticks 10, 20 and 30, and compiles its tick once."""
    out = {}
    for name, extra in (("fast", []), ("device", DEVICE + [f"snapshot.every={EVERY}"])):
        run_dir = tmp_path_factory.mktemp(name) / "run"
        before = _device_step()._cache_size()
        out[name] = run_job(load_config(WORLD + RUN + extra + [f"run.ticks={TICKS}"]), run_dir), run_dir
        assert _device_step()._cache_size() - before <= (name == "device")  # not again on the second tick
    return out


def test_the_device_run_writes_what_the_fast_run_writes(runs):
    (fast, fast_dir), (device, device_dir) = runs["fast"], runs["device"]
    assert device["run"]["engine"] == "device"
    assert device["engine"]["engine"] == "device" and device["engine"]["book_full"] == 0
    assert device["engine"]["fills"] == fast["engine"]["fills"] > TICKS
    assert device["fill_hash"] == fast["fill_hash"]
    assert rows(device_dir, "trades") == rows(fast_dir, "trades")
    assert rows(device_dir, "candles") == rows(fast_dir, "candles")
    assert device["engine"]["resting"] == fast["engine"]["resting"]


def test_a_device_run_resumes_from_its_snapshot_onto_the_same_fills(runs, tmp_path, monkeypatch):
    device, device_dir = runs["device"]
    copy = Path(shutil.copytree(device_dir, tmp_path / "copy"))  # the resume writes into the snapshot's run
    snap = copy / "snapshots" / f"tick_{EVERY:07d}.qtgsnap"
    ticks = []  # the resumed run's ticks, run by the device simulation
    step = DeviceSimulation.step
    monkeypatch.setattr(DeviceSimulation, "step", lambda self, *a, **k: ticks.append(self.tick) or step(self, *a, **k))
    compiled = _device_step()._cache_size()  # the fresh run compiled this world's tick
    resumed = run_job(load_config(WORLD + RUN + DEVICE + [f"resume={snap}", f"run.ticks={TICKS}"]), tmp_path / "unused")
    assert ticks == list(range(EVERY, TICKS))
    assert _device_step()._cache_size() == compiled  # params, state and books from the snapshot: no new program
    assert resumed["fill_hash"] == device["fill_hash"]


def test_the_large_experiment_at_small_shapes_runs_on_the_device_as_with_fast(tmp_path):
    """``+experiment=large`` (two symbols, a billion shares outstanding, noise traders
    active 1% to 5% of ticks) with this file's counts: the same shapes as the runs above,
    so nothing compiles again."""
    out = {}
    for name, extra in (("fast", []), ("device", DEVICE)):
        cfg = load_config(["+experiment=large", *WORLD, *RUN, *extra, f"run.ticks={TICKS}"])
        out[name] = run_job(cfg, tmp_path / name)
    assert cfg.market.shares_outstanding == 1_000_000_000 and cfg.population["noise"].activity == [0.01, 0.05]
    assert out["device"]["fill_hash"] == out["fast"]["fill_hash"]
    assert out["device"]["engine"]["fills"] == out["fast"]["engine"]["fills"] > 0
