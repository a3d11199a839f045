"""The end-of-run summary and table name every agent: those with rows and the background pool."""

from __future__ import annotations

import numpy as np
import pytest

from components.money import SCALE
from qtg.reports.chart import chart_figure
from qtg.reports.risk import excess_returns, summarize_excess
from qtg.reports.summary import agents_text, summarize, table
from tests.support import make_config, run_sim


def test_agents_text():
    assert agents_text(120) == "120 agents"
    assert agents_text(12_500, 87_500) == "100,000 agents (12,500 with rows, 87,500 in the background pool)"


def test_the_table_and_the_chart_count_the_background_pool():
    cfg = make_config(**{"run.ticks": 5, "population.noise.count": 20, "population.background.count": 300})
    run = run_sim(cfg)
    summary = summarize(cfg, run.initial, run.sim, run.rec, 1.0)
    assert summary["run"]["agents"] == 70 and summary["run"]["background_pool"] == 300
    assert summary["tiers"]["total"] == 370
    assert table(summary).splitlines()[0].startswith(
        "qtg: 5 ticks, 370 agents (70 with rows, 300 in the background pool), engine=fast, seed=0, ")
    title = chart_figure(run.sim.static, run.rec.arrays())._suptitle.get_text()
    assert title == "qtg run: 5 ticks, 10 symbols, 370 agents (70 with rows, 300 in the background pool)"


def test_excess_returns_against_hand_computed_values():
    # Agent 0: cash 1,000 and 10 shares at 100 (equity 2,000); the price doubles and it
    # never traded: return 50%, buy-and-hold 50%, excess 0. Agent 1: the same start, sold
    # its shares at 100 for 1,000: return 0, buy-and-hold 50%, excess -50%. Agent 2: cash
    # 2,000 only, bought 10 shares at 100: return 50%, buy-and-hold 0, excess 50%.
    # Agent 3: nothing to start with: 0 everywhere.
    cash0 = np.array([1_000, 1_000, 2_000, 0]) * SCALE
    pos0 = np.array([[10], [10], [0], [0]])
    marks0, marks1 = np.array([100.0 * SCALE]), np.array([200.0 * SCALE])
    equity1 = np.array([3_000, 2_000, 3_000, 0]) * float(SCALE)
    total, hold = excess_returns(cash0, pos0, marks0, marks1, equity1)
    np.testing.assert_allclose(total, [0.5, 0.0, 0.5, 0.0])
    np.testing.assert_allclose(hold, [0.5, 0.5, 0.0, 0.0])
    out = summarize_excess(total, hold, [("a", 0, 3), ("b", 3, 4), ("none", 4, 4)])
    assert out["a"] == {"count": 3, "mean": 0.0, "median": 0.0, "min": -0.5, "max": 0.5,
                        "return_mean": pytest.approx(1 / 3), "hold_mean": pytest.approx(1 / 3)}
    assert out["b"]["mean"] == 0.0 and out["none"] == {"count": 0, "mean": None, "median": None, "min": None,
                                                        "max": None, "return_mean": None, "hold_mean": None}


def test_the_summary_reports_each_kinds_excess_over_buy_and_hold():
    cfg = make_config(**{"run.ticks": 60, "population.noise.count": 20, "population.momentum.count": 5,
                         "hooks": []})
    run = run_sim(cfg)
    summary = summarize(cfg, run.initial, run.sim, run.rec, 1.0)
    excess = summary["excess_by_kind"]
    assert set(excess) == set(summary["pnl_by_kind"]) == {"market_maker", "noise", "momentum"}
    # Recomputed from the wallets: total return from the P&L, buy-and-hold from the
    # opening holdings at the end marks (mid or last trade).
    w0, w1, st = run.initial.wallet, run.sim.state.wallet, run.sim.state
    last0 = np.asarray(run.initial.market.last, np.float64)
    bid, ask, last = (np.asarray(x) for x in (st.market.bid, st.market.ask, st.market.last))
    mark1 = np.where((bid > 0) & (ask > 0), (bid + ask) / 2.0, last)
    cash0, pos0 = np.asarray(w0.cash, np.float64), np.asarray(w0.position, np.float64)
    eq0 = cash0 + pos0 @ last0
    eq1 = np.asarray(w1.cash) + np.asarray(w1.position) @ mark1
    ref = (eq1 - (cash0 + pos0 @ mark1)) / eq0
    for k in run.sim.static.kinds:
        assert excess[k.name]["count"] == k.count
        assert excess[k.name]["mean"] == pytest.approx(ref[k.start : k.stop].mean(), abs=1e-12)
        assert excess[k.name]["max"] == pytest.approx(ref[k.start : k.stop].max(), abs=1e-12)
        assert excess[k.name]["return_mean"] - excess[k.name]["hold_mean"] == pytest.approx(
            excess[k.name]["mean"], abs=1e-12)
    # Momentum traders start with cash only: their buy-and-hold return is 0.
    assert excess["momentum"]["hold_mean"] == 0.0
