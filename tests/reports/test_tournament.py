"""The strategy tournament: ranking across seeds, and the experiment end to end."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from qtg.reports.tournament import chart, excess, excess_table, mean_ci, rank, t_quantile, table


def summary(seed, sharpe_by_kind, pnl_by_kind, excess_by_kind=None):
    def stat(v):
        return {"count": 1, "mean": v, "median": v, "min": v, "max": v}

    out = {
        "run": {"seed": seed},
        "pnl_by_kind": {k: {"pnl_mean": p} for k, p in pnl_by_kind.items()},
        "risk_by_kind": {
            k: {"sharpe": stat(s), "max_drawdown": stat(0.01), "total_return": stat(0.002)}
            for k, s in sharpe_by_kind.items()
        },
    }
    if excess_by_kind is not None:
        out["excess_by_kind"] = {k: stat(v) for k, v in excess_by_kind.items()}
    return out


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


# Two-sided 95% Student t quantiles t(0.975, df), from the published tables
# (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2), to 3 decimals.
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 19: 2.093, 29: 2.045, 120: 1.980}


def test_t_quantiles_match_the_published_table():
    for df, t in T975.items():
        assert t_quantile(0.975, df) == pytest.approx(t, abs=5e-4), df
    assert t_quantile(0.95, 9) == pytest.approx(1.833, abs=5e-4)
    assert t_quantile(0.975, 10**6) == pytest.approx(1.960, abs=5e-4)  # the normal's


def test_confidence_interval_by_hand():
    # Values 1, 2, 3, 4, 5: mean 3, sample sd sqrt(2.5), half width t(0.975, 4) sd / sqrt(5).
    mean, low, high = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776445105 * math.sqrt(2.5) / math.sqrt(5)
    assert mean == 3.0 and low == pytest.approx(3 - half, abs=1e-8) and high == pytest.approx(3 + half, abs=1e-8)
    # Two values 0.01 and 0.03: sd sqrt(2) * 0.01, half width 12.7062 * 0.01.
    mean, low, high = mean_ci([0.01, 0.03])
    assert mean == pytest.approx(0.02) and high - mean == pytest.approx(0.127062047, abs=1e-8)
    # A 90% interval is narrower; one value has none; no values, nothing.
    assert mean_ci([1.0, 2.0, 3.0, 4.0, 5.0], 0.90)[2] == pytest.approx(3 + 2.131847 * math.sqrt(0.5), abs=1e-6)
    assert mean_ci([0.5]) == (0.5, None, None) and mean_ci([]) == (None, None, None)


def test_the_ci_covers_the_true_mean_95_percent_of_the_time():
    """Normal samples of 10: the interval holds the true mean in 95% of 4,000 trials
    (binomial standard error 0.34%)."""
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(4000):
        _, low, high = mean_ci(list(rng.normal(0.3, 2.0, 10)))
        hits += low <= 0.3 <= high
    assert abs(hits / 4000 - 0.95) < 0.014


def test_excess_table_marks_alpha_where_the_interval_is_above_zero():
    seeds = [
        summary(0, {"a": 0.1, "b": 0.1, "c": 0.1}, {"a": 0, "b": 0, "c": 0}, {"a": 0.010, "b": 0.004, "c": -0.02}),
        summary(1, {"a": 0.1, "b": 0.1, "c": 0.1}, {"a": 0, "b": 0, "c": 0}, {"a": 0.012, "b": -0.003, "c": -0.03}),
        summary(2, {"a": 0.1, "b": 0.1, "c": 0.1}, {"a": 0, "b": 0, "c": 0}, {"a": 0.014, "b": 0.002}),
        summary(3, {"a": 0.1}, {"a": 0.0}),  # a run from before excess_by_kind: skipped
    ]
    rows = excess(seeds)
    assert [r["kind"] for r in rows] == ["a", "b", "c"]  # best mean first
    a, b, c = rows
    # a: 1.0%, 1.2%, 1.4%: mean 1.2%, sd 0.2%, half width 4.302653 * 0.2% / sqrt(3).
    half = 4.302652730 * 0.002 / math.sqrt(3)
    assert a["seeds"] == 3 and a["excess_mean"] == pytest.approx(0.012) and a["excess_std"] == pytest.approx(0.002)
    assert a["ci_low"] == pytest.approx(0.012 - half) and a["ci_high"] == pytest.approx(0.012 + half)
    assert a["alpha"] and not b["alpha"] and not c["alpha"]
    assert c["seeds"] == 2 and c["ci_low"] == pytest.approx(-0.025 - 12.706204736 * math.sqrt(0.00005) / math.sqrt(2))
    text = excess_table(rows).splitlines()
    assert text[0].split() == ["kind", "seeds", "mean", "excess", "return", "95%", "CI", "low", "high"]
    assert text[2].split() == ["a", "3", "+1.200%", f"{(0.012 - half) * 100:+.3f}%", f"{(0.012 + half) * 100:+.3f}%",
                               "alpha"]
    assert text[3].split()[-1] != "alpha" and len(text) == 5
    assert excess([summary(0, {"a": 0.1}, {"a": 0.0}, {"a": 0.01})])[0]["ci_low"] is None  # one seed


def test_the_chart_draws_the_excess_panel(tmp_path):
    seeds = [summary(s, {"a": 0.1 * s, "b": 0.2}, {"a": 1.0, "b": 2.0}, {"a": 0.01 + 0.001 * s, "b": -0.01 * s})
             for s in range(3)]
    chart(tmp_path / "ranking.png", rank(seeds), 3, excess(seeds))
    assert (tmp_path / "ranking.png").stat().st_size > 5_000


@pytest.mark.slow
def test_tournament_experiment_end_to_end(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "qtg.run", "+experiment=strategy_tournament", "run.ticks=40",
         "population.noise.count=40", "seed=0,1", f"hydra.sweep.dir={tmp_path}"],
        check=False, cwd=tmp_path, env=os.environ | {"JAX_PLATFORMS": "cpu"}, capture_output=True, text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    ranking = json.loads((tmp_path / "ranking.json").read_text())
    assert ranking["seeds"] == [0, 1]
    assert {r["kind"] for r in ranking["ranking"]} == {
        "market_maker", "noise", "momentum", "trend_follower", "macd_cross", "bollinger_reversion",
        "vwap_executor", "pairs", "fundamentalist",
    }
    assert all(r["seeds"] == 2 for r in ranking["ranking"])
    assert {r["kind"] for r in ranking["excess"]} == {r["kind"] for r in ranking["ranking"]}
    assert all(r["seeds"] == 2 and r["ci_low"] <= r["excess_mean"] <= r["ci_high"] for r in ranking["excess"])
    assert "mean excess return" in out.stdout
    assert (tmp_path / "ranking.png").stat().st_size > 5_000
    assert "rank" in out.stdout
