"""Strategy tournament: rank strategy kinds by risk-adjusted return over several seeds.

``python -m qtg.run +experiment=strategy_tournament`` runs one job per seed (Hydra
multirun); when all jobs are done, ``TournamentReport`` (a Hydra callback) reads each
job's ``summary.json`` and writes into the sweep directory:

* ``ranking.json``: per kind, the mean and standard deviation across seeds of its agents'
  median Sharpe ratio, median maximum drawdown, median total return and mean P&L, and
  its rank;
* ``ranking.png``: those per kind as bars with error bars across seeds;

and prints the ranking table. Kinds are ranked by the mean over seeds of their median
Sharpe ratio (higher is better); a kind without a Sharpe in some seed (no ready agents)
ranks on the seeds it has.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from qtg.core.files import save_figure, write_text

METRICS = ("sharpe", "max_drawdown", "total_return")


def collect(summaries: list[dict]) -> dict[str, dict[str, list[float]]]:
    """Per kind, per metric, the list of per-seed values (median over the kind's agents;
    ``pnl_mean`` is the mean P&L per agent in currency)."""
    out: dict[str, dict[str, list[float]]] = {}
    for summary in summaries:
        risk = summary["risk_by_kind"]
        for kind, pnl in summary["pnl_by_kind"].items():
            per = out.setdefault(kind, {m: [] for m in (*METRICS, "pnl_mean")})
            for m in METRICS:
                value = risk[kind][m]["median"]
                if value is not None:
                    per[m].append(float(value))
            per["pnl_mean"].append(float(pnl["pnl_mean"]))
    return out


def rank(summaries: list[dict]) -> list[dict[str, Any]]:
    """Rows sorted best first: kind, seeds, and mean/std across seeds of each metric."""
    rows = []
    for kind, per in collect(summaries).items():
        row: dict[str, Any] = {"kind": kind, "seeds": len(per["pnl_mean"])}
        for m, values in per.items():
            row[m] = round(float(np.mean(values)), 6) if values else None
            row[f"{m}_std"] = round(float(np.std(values)), 6) if values else None
        rows.append(row)
    rows.sort(key=lambda r: (-math.inf if r["sharpe"] is None else r["sharpe"], r["kind"]), reverse=True)
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def f(v, fmt, scale=1.0, unit=""):
        return "-" if v is None else format(v * scale, fmt) + unit

    lines = [
        f"{'rank':<6}{'kind':<22}{'seeds':>6}{'Sharpe':>10}{'+-':>8}{'max DD':>9}{'return':>9}{'P&L/agent':>12}"
    ]
    for r in rows:
        lines.append(
            f"{r['rank']:<6}{r['kind']:<22}{r['seeds']:>6}{f(r['sharpe'], '.4f'):>10}"
            f"{f(r['sharpe_std'], '.4f'):>8}{f(r['max_drawdown'], '.2f', 100, '%'):>9}"
            f"{f(r['total_return'], '.2f', 100, '%'):>9}{f(r['pnl_mean'], ',.2f'):>12}"
        )
    return "\n".join(lines)


def chart(path: Path, rows: list[dict[str, Any]], n_seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [r["kind"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 0.5 * len(kinds) + 2.5), sharey=True)
    panels = (("sharpe", "median Sharpe", 1), ("max_drawdown", "median max drawdown %", 100),
              ("total_return", "median total return %", 100))
    y = np.arange(len(kinds))
    for ax, (m, title, scale) in zip(axes, panels):
        vals = [np.nan if r[m] is None else r[m] * scale for r in rows]
        errs = [0 if r[f"{m}_std"] is None else r[f"{m}_std"] * scale for r in rows]
        ax.barh(y, vals, xerr=errs, color="tab:blue", alpha=0.7, capsize=3)
        ax.axvline(0, color="black", lw=0.5)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(y, kinds)
    axes[0].invert_yaxis()
    fig.suptitle(f"strategy tournament: mean over {n_seeds} seeds (bars: +-1 std across seeds)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def report(sweep_dir: Path) -> list[dict[str, Any]]:
    """Aggregate every ``*/summary.json`` under ``sweep_dir``; write ranking.json/.png."""
    summaries = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))]
    if not summaries:
        raise FileNotFoundError(f"no */summary.json under {sweep_dir}")
    rows = rank(summaries)
    seeds = sorted(s["run"]["seed"] for s in summaries)
    write_text(sweep_dir / "ranking.json", json.dumps({"seeds": seeds, "ranking": rows}, indent=2) + "\n")
    chart(sweep_dir / "ranking.png", rows, len(seeds))
    return rows


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a dependency
    Callback = object  # type: ignore[assignment,misc]


class TournamentReport(Callback):
    """Hydra callback: after a multirun, rank the kinds over all jobs' summaries."""

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows = report(sweep_dir)
        print("\n" + table(rows))
        print(f"\nranking: {sweep_dir / 'ranking.json'}, {sweep_dir / 'ranking.png'}")
