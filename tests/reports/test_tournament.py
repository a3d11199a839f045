"""The strategy tournament: ranking across seeds, and the experiment end to end."""

import json
import os
import subprocess
import sys

import pytest

from qtg.reports.tournament import rank, table


def summary(seed, sharpe_by_kind, pnl_by_kind):
    def stat(v):
        return {"count": 1, "mean": v, "median": v, "min": v, "max": v}

    return {
        "run": {"seed": seed},
        "pnl_by_kind": {k: {"pnl_mean": p} for k, p in pnl_by_kind.items()},
        "risk_by_kind": {
            k: {"sharpe": stat(s), "max_drawdown": stat(0.01), "total_return": stat(0.002)}
            for k, s in sharpe_by_kind.items()
        },
    }


def test_kinds_rank_by_mean_sharpe_across_seeds():
    rows = rank([
        summary(0, {"a": 0.10, "b": 0.30, "c": None}, {"a": 1.0, "b": 2.0, "c": 3.0}),
        summary(1, {"a": 0.20, "b": -0.10, "c": 0.05}, {"a": 3.0, "b": 4.0, "c": 5.0}),
    ])
    assert [r["kind"] for r in rows] == ["a", "b", "c"]  # 0.15 > 0.10 > 0.05
    a = rows[0]
    assert (a["rank"], a["seeds"], a["sharpe"], a["pnl_mean"]) == (1, 2, 0.15, 2.0)
    assert a["sharpe_std"] == pytest.approx(0.05)
    assert rows[2]["sharpe"] == 0.05  # ranked on the seed it has a Sharpe in
    assert "rank" in table(rows).splitlines()[0] and len(table(rows).splitlines()) == 4


def test_a_kind_without_any_sharpe_ranks_last():
    rows = rank([summary(0, {"a": None, "b": -1.0}, {"a": 0.0, "b": 0.0})])
    assert [r["kind"] for r in rows] == ["b", "a"] and rows[1]["sharpe"] is None


@pytest.mark.slow
def test_tournament_experiment_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "qtg.run", "+experiment=strategy_tournament", "run.ticks=40",
         "population.noise.count=40", "seed=0,1", f"hydra.sweep.dir={tmp_path}"],
        cwd=tmp_path, env=os.environ | {"JAX_PLATFORMS": "cpu"}, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    ranking = json.loads((tmp_path / "ranking.json").read_text())
    assert ranking["seeds"] == [0, 1]
    assert {r["kind"] for r in ranking["ranking"]} == {
        "market_maker", "noise", "momentum", "trend_follower", "macd_cross", "bollinger_reversion",
        "vwap_executor", "pairs",
    }
    assert all(r["seeds"] == 2 for r in ranking["ranking"])
    assert (tmp_path / "ranking.png").stat().st_size > 5_000
    assert "rank" in out.stdout
