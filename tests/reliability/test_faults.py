"""Faults (docs/reliability.md, "Runs, resume, faults and signals"): a run directory that
cannot be written, a full disk (RLIMIT_FSIZE in a child process), a file that is not a
database, a world that cannot be built. Each gives one line on stderr and no traceback;
a refusal exits 2 and leaves no run directory it created; a failure during the run exits
1 and leaves a consistent database and no half-written or 0-byte file."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from qtg.core.files import atomic_open, write_text
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks.storage import StorageError
from tests.support import make_config

ROOT = Path(__file__).resolve().parents[2]
WORLD = ["market.symbols=[ACME,BOLT]", "market.sectors=[]", "population.market_maker.count=4",
         "population.noise.count=10", "run.chart=false", "run.table=false", "hooks=[metrics,storage]"]


LIMITED = """import resource, runpy, signal, sys
limit = int(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = ["qtg.run", *sys.argv[2:]]
runpy.run_module("qtg.run", run_name="__main__", alter_sys=True)
"""
"""A child that limits the size of every file it writes (``RLIMIT_FSIZE``), then runs
``python -m qtg.run``: a full disk for files past the limit."""


def qtg_run(args: list[str], cwd: Path, prefix: tuple[str, ...] = (), file_size: int | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m qtg.run ARGS`` in a new process (this checkout's qtg); ``file_size``:
    files may grow to that many bytes."""
    env = os.environ | {"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    run = ["-m", "qtg.run"] if file_size is None else ["-c", LIMITED, str(file_size)]
    return subprocess.run([*prefix, sys.executable, *run, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def one_line(out: subprocess.CompletedProcess) -> str:
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr and "Error executing job" not in out.stderr
    return lines[0]


def unprivileged() -> tuple[str, ...]:
    """A command prefix under which file permission bits hold: none for a normal user;
    for root, ``setpriv`` without the capabilities that bypass them."""
    if os.geteuid() != 0:
        return ()
    exe = shutil.which("setpriv")
    prefix = (exe, "--bounding-set=-dac_override,-dac_read_search") if exe else ()
    if not prefix or subprocess.run([*prefix, "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("running as root without setpriv: permission bits do not apply")
    return prefix


def no_partial_files(run_dir: Path) -> None:
    """No temporary file left, no 0-byte output, every JSON output whole."""
    for p in run_dir.rglob("*"):
        if p.is_file():
            assert not p.name.endswith(".tmp"), p
            if p.suffix in (".json", ".csv", ".png"):
                assert p.stat().st_size > 0, p
            if p.suffix == ".json":
                json.loads(p.read_text())


# ---------------------------------------------------------------------- unwritable
@pytest.fixture
def read_only(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    yield d
    d.chmod(0o755)


def test_a_run_directory_in_a_read_only_folder_is_refused(read_only, tmp_path):
    out = qtg_run(WORLD + ["run.ticks=5", f"hydra.run.dir={read_only / 'run'}"], tmp_path, unprivileged())
    assert out.returncode == 2
    assert one_line(out) == (f"qtg: cannot write '{read_only / 'run'}': Permission denied; "
                             "choose a writable run directory with hydra.run.dir=PATH")
    assert list(read_only.iterdir()) == []


def test_a_read_only_run_directory_is_refused_and_kept(read_only, tmp_path):
    out = qtg_run(WORLD + ["run.ticks=5", f"hydra.run.dir={read_only}"], tmp_path, unprivileged())
    assert out.returncode == 2
    line = one_line(out)
    assert line.startswith(f"qtg: cannot write '{read_only}/") and "Permission denied" in line
    assert read_only.is_dir() and list(read_only.iterdir()) == []  # it existed: kept, and nothing in it


def test_a_run_directory_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("not a folder\n")
    out = qtg_run(WORLD + ["run.ticks=5", f"hydra.run.dir={tmp_path / 'file' / 'run'}"], tmp_path)
    assert out.returncode == 2
    assert one_line(out).startswith(f"qtg: cannot write '{tmp_path / 'file' / 'run'}': Not a directory")
    assert (tmp_path / "file").read_text() == "not a folder\n"


# ---------------------------------------------------------------------- disk full
@pytest.mark.slow  # a CLI run up to a full disk: 18 s on 2 cores
def test_disk_full_in_the_database_surfaces_as_a_storage_error(tmp_path):
    run = tmp_path / "run"
    out = qtg_run(WORLD + ["engine=exact", "run.ticks=3000", "storage.batch_ticks=10", f"hydra.run.dir={run}"],
                  tmp_path, file_size=192 * 1024)
    assert out.returncode == 1
    line = one_line(out)
    assert line.startswith(f"qtg: storage error: {run / 'qtg.sqlite'}: writing failed: "), line
    con = sqlite3.connect(run / "qtg.sqlite")
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        (last_tick,) = con.execute("SELECT last_tick FROM runs").fetchone()
        stored = [t for (t,) in con.execute("SELECT DISTINCT tick FROM ticks ORDER BY tick")]
    finally:
        con.close()
    assert last_tick >= 9 and stored == list(range(last_tick + 1))  # whole batches, nothing beyond
    assert not (run / "summary.json").exists()  # the run failed: no summary pretends otherwise
    no_partial_files(run)


@pytest.mark.slow  # a CLI run of 400 ticks: 25 s on 2 cores
def test_disk_full_in_the_outputs_leaves_no_partial_file(tmp_path):
    run = tmp_path / "run"
    out = qtg_run(WORLD + ["run.ticks=400", "hooks=[]", f"hydra.run.dir={run}"], tmp_path, file_size=24 * 1024)
    assert out.returncode == 1
    line = one_line(out)
    assert line.startswith(f"qtg: cannot write '{run}/") and line.endswith(": File too large"), line
    no_partial_files(run)
    assert not (run / "summary.json").exists()


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "summary.json"
    write_text(path, '{"old": true}\n')
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write('{"new": ')
        raise RuntimeError("the serializer failed")
    assert path.read_text() == '{"old": true}\n' and [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_hook_failing_in_on_end_does_not_mask_the_run_error(tmp_path):
    class FullDisk:  # a metrics hook on a full disk: its on_end fails too
        def on_start(self, sim):
            pass

        def on_tick(self, sim, r):
            pass

        def on_end(self, sim):
            raise OSError(28, "No space left on device", str(tmp_path / "metrics.json"))

    class Store:
        def on_start(self, sim):
            pass

        def on_tick(self, sim, r):
            if r.tick == 2:
                raise StorageError("qtg.sqlite: writing failed: OperationalError: database or disk is full")

        def on_end(self, sim):
            pass

    cfg = make_config(**{"market.symbols": ["ACME", "BOLT"], "market.sectors": [],
                         "population.market_maker.count": 4, "population.noise.count": 10})
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    with pytest.raises(StorageError, match="database or disk is full"):
        sim.run(10, hooks=[FullDisk(), Store()])
    assert sim.tick == 3


# ---------------------------------------------------------------------- refusals
def test_a_garbage_database_is_refused_before_any_file_is_written(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "qtg.sqlite").write_bytes(b"this is not a database\n" * 10)
    out = qtg_run(WORLD + ["run.ticks=5", f"hydra.run.dir={run}"], tmp_path)
    assert out.returncode == 2
    assert one_line(out).startswith(f"qtg: storage error: {run / 'qtg.sqlite'}: not a SQLite database")
    assert (run / "qtg.sqlite").read_bytes() == b"this is not a database\n" * 10
    qtg_files = sorted(p.name for p in run.iterdir() if p.name not in (".hydra", "run.log"))  # Hydra's own
    assert qtg_files == ["qtg.sqlite"]


def test_a_world_that_cannot_be_built_is_one_line_and_no_run_directory(tmp_path):
    out = qtg_run(WORLD + ["run.ticks=5", "market.shares_outstanding=1000"], tmp_path)
    assert out.returncode == 2
    assert one_line(out).startswith("qtg: config error: market.shares_outstanding: ACME has 1,000 shares, fewer "
                                    "than the agents' opening holdings")
    assert list(tmp_path.iterdir()) == []  # no outputs/DATE/TIME left behind
