"""The suite compiles with XLA's classic CPU emitters (``tests/conftest.py``: half the
compile time); users' programs compile with XLA's defaults (the fusion emitters). The
engines' bit-for-bit agreement depends on how each compiled program rounds its floats, so
the parity check that covers the most code runs again here, in a pytest of its own under
XLA's default flags: the host loop against the device engine, the whole state after every
tick (the RL environments step the device engine's tick, ``qtg.core.rollout.step``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARITY = ["tests/core/test_world.py::test_device_engine_gives_the_same_run"]


@pytest.mark.slow
def test_the_engines_agree_under_xlas_default_flags(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "XLA_FLAGS"))}
    env |= {"XLA_FLAGS": "", "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "xla")}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-o",
                           "addopts=", "-q", *PARITY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"{len(PARITY)} passed" in done.stdout
