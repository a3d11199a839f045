"""Shared fixtures. Tests run on the CPU with small shapes; long runs are session-scoped."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

from tests.support import Run, make_config, run_sim  # noqa: E402


@pytest.fixture(scope="session")
def default_run() -> Run:
    """The default 1,000-tick run: 2 market makers, 10 noise traders, fast engine."""
    return run_sim(make_config())


@pytest.fixture(scope="session")
def exact_run() -> Run:
    """The same world as ``default_run`` for 300 ticks on the exact engine."""
    return run_sim(make_config(**{"engine.name": "exact"}), ticks=300)
