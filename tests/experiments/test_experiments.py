"""Experiment scripts run end to end on small shapes."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

import seed_sweep  # noqa: E402


def test_seed_sweep_writes_table_and_figure(tmp_path, capsys):
    assert seed_sweep.main(["--seeds", "2", "--ticks", "40", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "seed_sweep.json").read_text())
    a, b = result["seeds"]
    assert a["fills"] > 0 and b["fills"] > 0
    assert a["fill_hash"] != b["fill_hash"]  # different seeds, different markets
    assert (tmp_path / "seed_sweep.png").stat().st_size > 5_000
