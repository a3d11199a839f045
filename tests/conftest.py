"""Shared fixtures. Tests run on the CPU with small shapes; long runs are session-scoped."""

import os
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent XLA compilation cache per test session, shared by the xdist workers and
# the CLI subprocesses they start (they inherit the environment): most tests build worlds
# of a few shapes, and each shape's tick then compiles once per session instead of once
# per process. Keyed by the program and the compiler, so a hit runs the same code. Every
# program is kept, the small ones too: a CLI subprocess compiles about 120 programs of a
# few tens of milliseconds each (bookkeeping and reports outside the tick), 2.5-3 s that
# a warm cache saves every one of the suite's subprocesses (under 1 MB of cache).
_run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"qtg-xla-cache-{_run}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# XLA's classic CPU emitters instead of its fusion emitters (the default): the suite
# compiles some hundreds of programs, each in about half the time (a tick of the RL
# environment: 3.9 s against 7.7 s), and runs them a little slower (PPO's env steps: about
# 14% fewer a second). In the runs compared the trades were the same; some indicators'
# floats round differently in their last bits, alike on every engine.
# tests/core/test_compiler_modes.py runs the widest engine parity checks again under XLA's
# default flags, which users' programs run with. An XLA_FLAGS of the caller's own (even
# empty) is kept as it is.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")


def _one_core() -> None:
    """Each xdist worker on a core of its own, before JAX starts its CPU backend (which
    sizes its thread pool by the cores it may use): worker ``gwN`` on the Nth core. The
    workers then never contend for cores (one worker per core, ``-n auto``), and XLA's
    runtime runs on one thread, as ``qtg.train`` runs it (``qtg.rl.one_cpu_thread``: a
    pool of several threads can deadlock on PPO's program, which some tests run
    in-process). The CLI subprocesses a test starts inherit its core. A lone pytest (no
    xdist) keeps every core."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not (hasattr(os, "sched_setaffinity") and worker[2:].isdigit()):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) > 1:
        os.sched_setaffinity(0, {cpus[int(worker[2:]) % len(cpus)]})


_one_core()

import pytest  # noqa: E402

from tests.support import Run, make_config, run_sim  # noqa: E402


def pytest_collection_modifyitems(session, config, items):
    """The files with a ``slow`` test first, each file's tests in their order. With
    ``--dist loadfile --no-loadscope-reorder`` (pyproject's addopts) pytest-xdist hands out
    whole files in this order, so the long files start early and the short ones fill the
    gaps at the end (by default it starts the files with the most tests, which leaves a
    file of one long device test to run alone at the end)."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(scope="session")
def default_run() -> Run:
    """The default 1,000-tick run: 2 market makers, 10 noise traders, fast engine."""
    return run_sim(make_config())


@pytest.fixture(scope="session")
def exact_run() -> Run:
    """The same world as ``default_run`` for 300 ticks on the exact engine."""
    return run_sim(make_config(**{"engine.name": "exact"}), ticks=300)
