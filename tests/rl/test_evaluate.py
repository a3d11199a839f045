"""qtg.evaluate's arithmetic: buy-and-hold's metrics of a known path, the rows' means with
Student t intervals, and the policy's paired differences."""

import math
import os

import numpy as np
import pytest

from qtg.evaluate import HOLD, POLICY, aggregate, eval_config, hold_metrics, main, table
from qtg.reports.tournament import t_quantile


def test_buy_and_hold_of_a_known_path():
    m = hold_metrics(np.array([100.0, 110.0, 99.0, 108.9]))
    assert m["total_return"] == pytest.approx(0.089)
    r = np.array([0.1, -0.1, 0.1])
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1))
    assert m["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99


def test_rows_and_paired_differences_with_t_intervals():
    # the policy's row anywhere in the table (the run's kinds come in their layout's order)
    per_seed = [{"noise": {"total_return": n, "sharpe": 0.0, "max_drawdown": 0.02},
                 POLICY: {"total_return": p, "sharpe": 0.1, "max_drawdown": 0.01},
                 HOLD: {"total_return": h, "sharpe": None, "max_drawdown": 0.05}}
                for p, n, h in [(0.03, 0.01, 0.0), (0.02, 0.0, 0.05), (0.04, 0.01, -0.02)]]
    result = aggregate(per_seed)
    policy = result["rows"][1]
    half = t_quantile(0.975, 2) * np.std([0.03, 0.02, 0.04], ddof=1) / math.sqrt(3)
    assert policy["row"] == POLICY and policy["total_return"] == pytest.approx(0.03)
    assert policy["total_return_low"] == pytest.approx(0.03 - half) and policy["sharpe_low"] == pytest.approx(0.1)
    assert result["rows"][2]["sharpe"] is None  # no value in any seed: no mean
    versus = {v["versus"]: v for v in result["versus"]}
    assert list(versus) == ["noise", HOLD]
    d = [0.02, 0.02, 0.03]
    half = t_quantile(0.975, 2) * np.std(d, ddof=1) / math.sqrt(3)
    assert versus["noise"]["return_diff"] == pytest.approx(np.mean(d)) and versus["noise"]["beats"]
    assert versus["noise"]["low"] == pytest.approx(np.mean(d) - half)
    assert not versus[HOLD]["beats"]  # differences 0.03, -0.03, 0.06: the interval spans 0
    text = table(result)
    assert text.splitlines()[2].startswith(POLICY) and f"{POLICY}'s advantage" in text.splitlines()[-3]
    assert text.splitlines()[-2].lstrip().startswith("noise") and "beats" in text.splitlines()[-2]


def test_the_evaluation_market_is_the_trainings_with_the_policy_in_the_learners_place(tmp_path):
    from qtg.rl.checkpoint import write_policy
    from systems.features import SPEC
    from systems.policy import meta_for

    path = write_policy(tmp_path / "policy.npz", [(np.zeros((SPEC.size, 5)), np.zeros(5))], meta_for("trading", 5))
    cfg = eval_config(str(path), ["population.learner.size=[20,30]"], seed=1001, ticks=50, agents=3, strategies=1)
    counts = {n: k.count for n, k in cfg.population.items() if k.count}
    assert counts == {"market_maker": 2, "noise": 29, POLICY: 3, "momentum": 1, "trend_follower": 1,
                      "macd_cross": 1, "bollinger_reversion": 1, "fundamentalist": 1}
    assert cfg.population[POLICY].size == [20, 30] and cfg.population[POLICY].policy == str(path)
    assert (cfg.seed, cfg.run.ticks, cfg.market.symbols) == (1001, 50, ["ACME"])


def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--seeds", "1"]) == 2
    assert capsys.readouterr().err.strip() == "qtg.evaluate: --seeds: must be at least 2, got 1"
    assert main([str(tmp_path / "nope.npz")]) == 2
    assert "population.rl_policy.policy:" in capsys.readouterr().err


def test_jobs_run_the_seeds_in_processes_in_seed_order():
    """``in_processes`` (``--jobs``) gives what the loop gives, in the items' order, from
    spawned workers each pinned to one core; a worker takes the next core of the queue."""
    from qtg.evaluate import _take_core, in_processes

    paths = [np.array([100.0, 100.0 + k, 95.0 + 2 * k, 101.0]) for k in range(5)]
    got = in_processes(_metrics_and_cores, paths, jobs=2)
    allowed = sorted(os.sched_getaffinity(0))
    assert [m for m, _ in got] == [hold_metrics(p) for p in paths]
    assert all(len(cores) == 1 and cores[0] in allowed for _, cores in got)

    class Queue(list):
        def get(self):
            return self.pop(0)

    try:
        _take_core(Queue([allowed[-1]]))
        assert os.sched_getaffinity(0) == {allowed[-1]}
    finally:
        os.sched_setaffinity(0, allowed)


def _metrics_and_cores(path):
    return hold_metrics(path), sorted(os.sched_getaffinity(0))
