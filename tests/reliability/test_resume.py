"""Resume never destroys data (docs/reliability.md, "Runs, resume, faults and signals"):
a resume that would run no tick or cut a recorded run short is refused and changes
nothing; a copied run directory resumes into the copy; world overrides are refused,
listing the keys, while run-level keys may change; summary.json is replaced only when the
resumed run has finished."""

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qtg.core.compose import load_config
from qtg.core.config import ConfigError
from qtg.run import run_job

ROOT = Path(__file__).resolve().parents[2]
WORLD = ["market.symbols=[ACME,BOLT]", "market.sectors=[]", "population.market_maker.count=4",
         "population.noise.count=10", "storage.batch_ticks=5"]
RUN = ["run.chart=false", "run.table=false", "run.agents_table=false", "hooks=[metrics,storage]"]
TICKS, EVERY = 30, 10  # snapshots at ticks 10, 20 and 30


def qtg_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``python -m qtg.run ARGS`` in a new process (this checkout's qtg)."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "qtg.run", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def fingerprint(run_dir: Path) -> dict[str, str]:
    """Every file of a run directory (snapshots included) by content hash, and the
    database by its rows (its bytes change with a checkpoint)."""
    out = {}
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and not p.name.startswith("qtg.sqlite"):
            out[str(p.relative_to(run_dir))] = hashlib.sha256(p.read_bytes()).hexdigest()
    con = sqlite3.connect(run_dir / "qtg.sqlite")
    try:
        for table in ("runs", "ticks", "trades", "candles"):
            rows = con.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
            out[f"db:{table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    finally:
        con.close()
    return out


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> Path:
    """A 30-tick run with snapshots at ticks 10, 20 and 30."""
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    run_job(load_config(WORLD + RUN + [f"run.ticks={TICKS}", f"snapshot.every={EVERY}"]), run_dir)
    return run_dir


@pytest.fixture
def run_dir(original, tmp_path) -> Path:
    """A private copy of the original run directory."""
    return Path(shutil.copytree(original, tmp_path / "run"))


def snap(run_dir: Path, tick: int) -> Path:
    return run_dir / "snapshots" / f"tick_{tick:07d}.qtgsnap"


def resume_cfg(run_dir: Path, tick: int, *extra: str):
    return load_config(WORLD + RUN + [f"resume={snap(run_dir, tick)}", *extra])


# ---------------------------------------------------------------------- run.ticks
@pytest.mark.parametrize("ticks", [20, 5])
def test_run_ticks_at_or_below_the_snapshot_tick_is_refused_and_changes_nothing(run_dir, tmp_path, ticks):
    before = fingerprint(run_dir)
    with pytest.raises(ConfigError) as e:
        run_job(resume_cfg(run_dir, 20, f"run.ticks={ticks}"), tmp_path / "new")
    assert str(e.value).startswith(f"run.ticks: {ticks} does not go past the snapshot '{snap(run_dir, 20)}', "
                                   "taken at tick 20")
    assert "run.ticks > 20" in str(e.value)
    assert fingerprint(run_dir) == before  # the database is not cut back, summary.json not replaced
    assert not (tmp_path / "new").exists()


def test_run_ticks_short_of_the_recorded_run_is_refused(run_dir, tmp_path):
    before = fingerprint(run_dir)
    with pytest.raises(ConfigError) as e:
        run_job(resume_cfg(run_dir, 10, "run.ticks=25"), tmp_path / "new")
    assert str(e.value).startswith(f"run.ticks: 25 would end the run before the 30 ticks its run directory "
                                   f"'{run_dir}' already holds")
    assert "run.ticks >= 30" in str(e.value)
    assert fingerprint(run_dir) == before


def test_cli_refusal_is_one_line_exit_2_and_leaves_no_run_directory(run_dir, tmp_path):
    before = fingerprint(run_dir)
    work = tmp_path / "cwd"
    work.mkdir()
    out = qtg_run(WORLD + RUN + [f"resume={snap(run_dir, 20)}", "run.ticks=20"], cwd=work)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("qtg: config error: run.ticks: 20 does not go past"), lines
    assert list(work.iterdir()) == []  # Hydra's outputs/DATE/TIME is gone again
    assert fingerprint(run_dir) == before


# ---------------------------------------------------------------------- where it writes
def test_a_copied_run_directory_resumes_into_the_copy(original, tmp_path):
    before = fingerprint(original)
    copy = Path(shutil.copytree(original, tmp_path / "copy"))
    straight = json.loads((original / "summary.json").read_text())
    resumed = run_job(resume_cfg(copy, 10, f"run.ticks={TICKS}"), tmp_path / "hydra")
    assert fingerprint(original) == before  # the original is untouched
    on_disk = json.loads((copy / "summary.json").read_text())
    assert on_disk["run"]["resumed_from"] == str(snap(copy, 10)) and on_disk["run"]["ticks_this_process"] == 20
    assert on_disk["fill_hash"] == resumed["fill_hash"] == straight["fill_hash"]
    con = sqlite3.connect(copy / "qtg.sqlite")
    assert con.execute("SELECT last_tick, resume_tick FROM runs").fetchall() == [(TICKS - 1, 9)]
    con.close()
    assert not (tmp_path / "hydra").exists()


# ---------------------------------------------------------------------- world overrides
def test_world_overrides_are_refused_listing_the_keys(run_dir, tmp_path):
    before = fingerprint(run_dir)
    given = ["market.symbols=[ACME]", "population.noise.count=7", "seed=3", "run.ticks=40"]
    with pytest.raises(ConfigError) as e:
        run_job(resume_cfg(run_dir, 20, *given), tmp_path / "new", overrides=given)
    msg = str(e.value)
    assert msg.startswith("market.symbols, population.noise.count, seed: a resumed run takes its world from "
                          f"the snapshot '{snap(run_dir, 20)}'")
    assert ("market.symbols=[ACME] (the snapshot has [ACME,BOLT]); population.noise.count=7 (the snapshot has "
            "10); seed=3 (the snapshot has 0)") in msg
    assert fingerprint(run_dir) == before


def test_a_group_override_is_a_world_override(run_dir, tmp_path):
    given = ["engine=exact", "run.ticks=40"]
    with pytest.raises(ConfigError, match=r"^engine.name: .*engine.name=exact \(the snapshot has fast\)"):
        run_job(resume_cfg(run_dir, 20, *given), tmp_path / "new", overrides=given)


def test_run_level_keys_and_repeated_world_keys_are_allowed(run_dir, tmp_path):
    given = [*WORLD, "run.ticks=36", "metrics.every=3", "snapshot.every=0", "snapshot.at_end=true",
             "storage.portfolio_every=0", "hooks=[metrics,storage]", "run.table=false"]
    summary = run_job(resume_cfg(run_dir, 20, *given), tmp_path / "new", overrides=given)
    assert summary["run"]["ticks"] == 36 and summary["run"]["ticks_this_process"] == 16
    assert summary["run"]["snapshots"] == [str(snap(run_dir, 36))]


def test_cli_world_override_is_one_line_exit_2(run_dir, tmp_path):
    out = qtg_run(WORLD + RUN + [f"resume={snap(run_dir, 20)}", "run.ticks=40", "population.noise.count=12",
                                 f"hydra.run.dir={tmp_path / 'new'}"], cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("qtg: config error: population.noise.count: a resumed run takes its world")
    assert "population.noise.count=12 (the snapshot has 10)" in lines[0]
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------- summary.json
def test_summary_is_replaced_only_when_the_resumed_run_has_finished(run_dir, tmp_path, monkeypatch):
    import qtg.hooks

    class Fail:
        def on_start(self, sim):
            pass

        def on_tick(self, sim, r):
            if r.tick == 25:
                raise RuntimeError("boom")

        def on_end(self, sim):
            pass

    old = (run_dir / "summary.json").read_bytes()
    monkeypatch.setitem(qtg.hooks.HOOKS, "progress", lambda ctx: Fail())
    with pytest.raises(RuntimeError, match="boom"):
        run_job(resume_cfg(run_dir, 20, "run.ticks=40", "hooks=[progress,metrics,storage]"), tmp_path / "new")
    assert (run_dir / "summary.json").read_bytes() == old
    assert [p.name for p in run_dir.glob(".*.tmp")] == []
