"""The architecture as import-linter's contracts (pyproject.toml): arrows point one way,
entry points -> reports -> hooks -> core -> systems -> components, and no package's
modules import each other in a circle."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or pytest.skip("import-linter is not installed")
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([exe, "--no-cache", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_layers_and_acyclic_contracts_are_kept():
    run = lint_imports()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in run.stdout


def test_an_upward_arrow_breaks_the_layers_contract(tmp_path):
    """The check can fail: with components above systems in the layers, every import of a
    component by a system is an upward arrow."""
    text = (ROOT / "pyproject.toml").read_text()
    flipped = text.replace('    "systems",\n    "components",\n', '    "components",\n    "systems",\n')
    assert flipped != text
    (tmp_path / "pyproject.toml").write_text(flipped)
    run = lint_imports(str(tmp_path / "pyproject.toml"))
    assert run.returncode == 1
    assert "BROKEN" in run.stdout and "systems" in run.stdout

