"""Signals (docs/reliability.md, "Runs, resume, faults and signals"): SIGINT (Ctrl-C) or
SIGTERM during ``python -m qtg.run`` stops the run at a tick boundary, flushes storage,
writes a snapshot (snapshots on), marks summary.json ``run.interrupted``, prints one line
and exits 130 or 143; resuming from that snapshot continues bit-identically."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qtg.core.compose import load_config
from qtg.run import run_job

ROOT = Path(__file__).resolve().parents[2]
WORLD = ["market.symbols=[ACME,BOLT]", "market.sectors=[]", "population.market_maker.count=4",
         "population.noise.count=10", "storage.batch_ticks=20"]
RUN = ["run.chart=false", "run.table=false", "hooks=[metrics,storage]", "metrics.every=10"]


def interrupt(run_dir: Path, signum: int) -> subprocess.CompletedProcess:
    """Start a long run (snapshots on, none periodic before the end), wait until it
    ticks (metrics.jsonl has a line), send ``signum`` and wait for it to exit."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    args = WORLD + RUN + ["run.ticks=1000000", "snapshot.every=1000000", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen([sys.executable, "-m", "qtg.run", *args], cwd=run_dir.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (run_dir / "metrics.jsonl").is_file() or not (run_dir / "metrics.jsonl").stat().st_size:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """``stopped(signum) -> (run_dir, process)``: one interrupted run per signal, kept for
    the module."""
    runs = {}

    def get(signum: int):
        if signum not in runs:
            run_dir = tmp_path_factory.mktemp(signal.Signals(signum).name) / "run"
            runs[signum] = run_dir, interrupt(run_dir, signum)
        return runs[signum]

    return get


@pytest.mark.slow  # a CLI run per signal: 17-23 s on 2 cores
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_at_a_tick_boundary_with_everything_written(stopped, signum):
    run_dir, out = stopped(signum)
    name = signal.Signals(signum).name
    assert out.returncode == 128 + signum, out.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    ticks = summary["run"]["ticks"]
    snap = run_dir / "snapshots" / f"tick_{ticks:07d}.qtgsnap"
    assert out.stderr.splitlines() == [f"qtg: interrupted ({name}) at tick {ticks} of 1000000; outputs written "
                                       f"in {run_dir}; resume with resume={snap}"]
    assert summary["run"]["interrupted"] is True and summary["run"]["stopped"] == f"interrupted ({name})"
    assert 10 <= ticks < 1000000 and summary["run"]["snapshots"] == [str(snap)] and snap.is_file()
    con = sqlite3.connect(run_dir / "qtg.sqlite")
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        runs = con.execute("SELECT last_tick, stop_reason FROM runs").fetchall()
        assert runs == [(ticks - 1, f"interrupted ({name})")]
        assert con.execute("SELECT count(DISTINCT tick), max(tick) FROM ticks").fetchone() == (ticks, ticks - 1)
    finally:
        con.close()
    assert json.loads((run_dir / "metrics.json").read_text())["ticks"] == ticks
    assert sum(1 for _ in (run_dir / "prices.csv").open()) == 1 + 2 * ticks  # header, then 2 symbols a tick


@pytest.mark.slow  # needs the SIGINT run of the test above
def test_resuming_after_sigint_continues_bit_identically(stopped, tmp_path):
    run_dir, _ = stopped(signal.SIGINT)
    stop = json.loads((run_dir / "summary.json").read_text())["run"]["ticks"]
    end = stop + 25
    snap = run_dir / "snapshots" / f"tick_{stop:07d}.qtgsnap"
    resumed = run_job(load_config(WORLD + RUN + [f"resume={snap}", f"run.ticks={end}"]), tmp_path / "unused")
    straight = run_job(load_config(WORLD + RUN + [f"run.ticks={end}"]), tmp_path / "straight")
    assert resumed["run"]["ticks"] == straight["run"]["ticks"] == end and resumed["run"]["interrupted"] is False
    assert resumed["fill_hash"] == straight["fill_hash"]
    assert json.loads((run_dir / "summary.json").read_text())["fill_hash"] == straight["fill_hash"]
    query = "SELECT tick, seq, taker_agent, maker_agent, symbol, side, price, qty FROM trades ORDER BY tick, seq"
    a, b = sqlite3.connect(run_dir / "qtg.sqlite"), sqlite3.connect(tmp_path / "straight" / "qtg.sqlite")
    try:
        assert a.execute(query).fetchall() == b.execute(query).fetchall()
    finally:
        a.close()
        b.close()
