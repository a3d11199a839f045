"""The end-of-run summary and table name every agent: those with rows and the background pool."""

from __future__ import annotations

from qtg.reports.chart import chart_figure
from qtg.reports.summary import agents_text, summarize, table
from tests.support import make_config, run_sim


def test_agents_text():
    assert agents_text(120) == "120 agents"
    assert agents_text(12_500, 87_500) == "100,000 agents (12,500 with rows, 87,500 in the background pool)"


def test_the_table_and_the_chart_count_the_background_pool():
    cfg = make_config(**{"run.ticks": 5, "population.noise.count": 20, "population.background.count": 300})
    run = run_sim(cfg)
    summary = summarize(cfg, run.initial, run.sim, run.rec, 1.0)
    assert summary["run"]["agents"] == 40 and summary["run"]["background_pool"] == 300
    assert summary["tiers"]["total"] == 340
    assert table(summary).splitlines()[0].startswith(
        "qtg: 5 ticks, 340 agents (40 with rows, 300 in the background pool), engine=fast, seed=0, ")
    title = chart_figure(run.sim.static, run.rec.arrays())._suptitle.get_text()
    assert title == "qtg run: 5 ticks, 10 symbols, 340 agents (40 with rows, 300 in the background pool)"
