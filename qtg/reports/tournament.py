"""Strategy tournament: rank strategy kinds by risk-adjusted return over several seeds.

``python -m qtg.run +experiment=strategy_tournament`` runs one job per seed (Hydra
multirun); when all jobs are done, ``TournamentReport`` (a Hydra callback) reads each
job's ``summary.json`` and writes into the sweep directory:

* ``ranking.json``: per kind, the mean and standard deviation across seeds of its agents'
  median Sharpe ratio, median maximum drawdown, median total return and mean P&L, and
  its rank (``ranking``); and per kind its excess return over buy-and-hold with a
  confidence interval across seeds (``excess``, below);
* ``ranking.png``: those per kind as bars with error bars across seeds, and the excess
  return with its confidence interval;

and prints both tables. Kinds are ranked by the mean over seeds of their median
Sharpe ratio (higher is better); a kind without a Sharpe in some seed (no ready agents)
ranks on the seeds it has.

Alpha. In each seed a kind's excess return is the mean over its agents of each agent's
total return minus the return its opening portfolio would have made untouched, at the
end marks (``summary.json["excess_by_kind"]``, :func:`qtg.reports.risk.excess_returns`).
Over the n seeds where the kind traded, the table gives the mean of those values and a
Student t confidence interval, ``mean +- t(1 - (1 - level) / 2, n - 1) * sd / sqrt(n)``
(``sd`` the sample standard deviation across seeds; none with one seed). Seeds are
independent runs, so the interval is exact for normal per-seed values. A kind whose
interval lies above 0 beat buy-and-hold in a way the seed-to-seed spread does not
explain: the table marks it ``alpha``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from qtg.core.files import save_figure, write_text
from qtg.reports.analysis import text_table

METRICS = ("sharpe", "max_drawdown", "total_return")
LEVEL = 0.95
"""Confidence level of the excess return's interval across seeds."""


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


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile of Student's t distribution with ``df`` degrees of freedom."""
    return float(stats.t.ppf(p, df))


def mean_ci(values: list[float], level: float = LEVEL) -> tuple[float | None, float | None, float | None]:
    """Mean of ``values`` (one per seed) and the two-sided Student t ``level`` confidence
    interval of the mean: ``mean +- t((1 + level) / 2, n - 1) * sd / sqrt(n)`` with the
    sample standard deviation ``sd`` (ddof 1). (None, None, None) with no values; the
    interval is None with one."""
    n = len(values)
    if n == 0:
        return None, None, None
    mean = float(np.mean(values))
    if n == 1:
        return mean, None, None
    half = t_quantile((1.0 + level) / 2.0, n - 1) * float(np.std(values, ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def rows_ci(per_seed: list[dict[str, dict[str, float | None]]], metrics: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per row of ``per_seed`` (one dict of rows per seed, each row's metrics), in order:
    ``row``, ``seeds`` and each metric's mean and interval (:func:`mean_ci`, over the seeds
    where it is not None) as ``<metric>``, ``<metric>_low``, ``<metric>_high``."""
    rows = []
    for name in per_seed[0]:
        row = {"row": name, "seeds": len(per_seed)}
        for m in metrics:
            row[m], row[f"{m}_low"], row[f"{m}_high"] = mean_ci([s[name][m] for s in per_seed if s[name][m] is not None])
        rows.append(row)
    return rows


def paired(per_seed: list[dict[str, dict[str, float | None]]], metric: str, key: str, higher: bool = True,
           reference: str | None = None) -> list[dict[str, Any]]:
    """The ``reference`` row's (default the first) advantage over each other row of
    ``per_seed`` in ``metric``, paired by seed over the seeds where both have it: its value
    less the other's (the other's less its own where lower is better, ``higher=False``).
    Per other row ``versus``, ``seeds``, the mean as ``key`` with its interval ``low`` and
    ``high`` (:func:`mean_ci`), and ``beats`` when the interval lies above 0."""
    names = list(per_seed[0])
    ref = names[0] if reference is None else reference
    sign = 1.0 if higher else -1.0
    out = []
    for name in names:
        if name == ref:
            continue
        diffs = [sign * (s[ref][metric] - s[name][metric]) for s in per_seed
                 if s[ref][metric] is not None and s[name][metric] is not None]
        mean, lo, hi = mean_ci(diffs)
        out.append({"versus": name, "seeds": len(diffs), key: mean, "low": lo, "high": hi,
                    "beats": lo is not None and lo > 0})
    return out


def ci_table(result: dict[str, Any], columns: tuple[tuple[str, str, float], ...], key: str, what: str,
             digits: int = 2, scale: float = 1.0, reference: str | None = None) -> str:
    """A result's ``rows`` (:func:`rows_ci`) as a table, one column per ``(metric, label,
    scale)`` (mean [95% interval], times ``scale``), then its ``versus`` (:func:`paired`:
    the ``reference`` row's, default the first, advantage ``key`` in ``what``, times ``scale``)."""

    def num(v, scale=1.0):
        return "-" if v is None else f"{v * scale:+.{digits}f}"

    width = max(len(r["row"]) for r in result["rows"]) + 2
    lines = [f"{'row':<{width}}" + "".join(f"{label + ' (95% CI)':>32}" for _, label, _ in columns)]
    for r in result["rows"]:
        cells = [f"{num(r[m], k)} [{num(r[m + '_low'], k)}, {num(r[m + '_high'], k)}]" for m, _, k in columns]
        lines.append(f"{r['row']:<{width}}" + "".join(f"{c:>32}" for c in cells))
    first = result["rows"][0]["row"] if reference is None else reference
    head = f"{first}'s advantage over each row in {what}, paired by seed (95% CI; beats: the interval is above 0):"
    lines += ["", head]
    for v in result["versus"]:
        mark = "  beats" if v["beats"] else ""
        lines.append(f"  {v['versus']:<{width}}{num(v[key], scale)} [{num(v['low'], scale)}, {num(v['high'], scale)}]{mark}")
    return "\n".join(lines)


def ci_chart(rows: list[dict[str, Any]], panels: tuple[tuple[str, str, float], ...], path: Path, title: str,
             colour: dict[str, str]) -> None:
    """One panel of horizontal bars per ``(metric, label, scale)``: each row's mean and its
    interval (rows of :func:`rows_ci`, values times ``scale``), coloured by ``colour`` (a
    row's name, else blue)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["row"] for r in rows]
    y = np.arange(len(rows))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 0.45 * len(rows) + 2.2), sharey=True)
    for ax, (m, label, scale) in zip(np.atleast_1d(axes), panels):
        mean = np.array([np.nan if r[m] is None else r[m] * scale for r in rows])
        lo = np.array([0.0 if r[m + "_low"] is None else r[m] * scale - r[m + "_low"] * scale for r in rows])
        hi = np.array([0.0 if r[m + "_high"] is None else r[m + "_high"] * scale - r[m] * scale for r in rows])
        ax.barh(y, mean, xerr=[lo, hi], color=[colour.get(n, "tab:blue") for n in names], alpha=0.8, capsize=3)
        ax.axvline(0, color="black", lw=0.5)
        ax.set_title(f"{label} (mean, 95% CI)", fontsize=10)
        ax.grid(alpha=0.3, axis="x")
    first = np.atleast_1d(axes)[0]
    first.set_yticks(y, names)
    first.invert_yaxis()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def excess(summaries: list[dict], level: float = LEVEL) -> list[dict[str, Any]]:
    """Per kind, its mean excess return over buy-and-hold across seeds with the ``level``
    confidence interval (:func:`mean_ci`), best mean first: kind, seeds, excess_mean,
    excess_std (across seeds, ddof 1), ci_low, ci_high, alpha (ci_low > 0). Summaries
    without ``excess_by_kind`` (runs from before it existed) are skipped."""
    per: dict[str, list[float]] = {}
    for summary in summaries:
        for kind, e in summary.get("excess_by_kind", {}).items():
            if e["mean"] is not None:
                per.setdefault(kind, []).append(float(e["mean"]))
    rows = []
    for kind, values in per.items():
        mean, low, high = mean_ci(values, level)
        rows.append({
            "kind": kind,
            "seeds": len(values),
            "excess_mean": mean,
            "excess_std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
            "ci_low": low,
            "ci_high": high,
            "alpha": low is not None and low > 0,
        })
    rows.sort(key=lambda r: (-r["excess_mean"], r["kind"]))
    return rows


def excess_table(rows: list[dict[str, Any]], level: float = LEVEL) -> str:
    """The excess-return rows as an aligned text table (returns in percent)."""
    def pct(v):
        return "-" if v is None else f"{v * 100:+.3f}%"

    head = ("kind", "seeds", "mean excess return", f"{level:.0%} CI low", "high", "")
    body = [(r["kind"], str(r["seeds"]), pct(r["excess_mean"]), pct(r["ci_low"]), pct(r["ci_high"]),
             "alpha" if r["alpha"] else "") for r in rows]
    return text_table([head, *body], left={0, 5})


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


def chart(path: Path, rows: list[dict[str, Any]], n_seeds: int,
          excess_rows: list[dict[str, Any]] | None = None, level: float = LEVEL) -> None:
    """Bars per kind (in ranking order): Sharpe, drawdown and return with +-1 std across
    seeds, and the mean excess return with its confidence interval as whiskers (green
    where the interval lies above 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [r["kind"] for r in rows]
    fig, axes = plt.subplots(1, 4, figsize=(17, 0.5 * len(kinds) + 2.5), sharey=True)
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
    by_kind = {r["kind"]: r for r in excess_rows or []}
    mean, lo, hi, colour = [], [], [], []
    for kind in kinds:
        e = by_kind.get(kind)
        m = np.nan if e is None else e["excess_mean"] * 100
        mean.append(m)
        lo.append(0.0 if e is None or e["ci_low"] is None else m - e["ci_low"] * 100)
        hi.append(0.0 if e is None or e["ci_high"] is None else e["ci_high"] * 100 - m)
        colour.append("tab:green" if e is not None and e["alpha"] else "tab:gray")
    ax = axes[3]
    ax.barh(y, mean, xerr=[lo, hi], color=colour, alpha=0.7, capsize=3)
    ax.axvline(0, color="black", lw=0.5)
    ax.set_title(f"excess return over buy-and-hold % ({level:.0%} CI)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(y, kinds)
    axes[0].invert_yaxis()
    fig.suptitle(f"strategy tournament: mean over {n_seeds} seeds (bars: +-1 std across seeds; "
                 f"excess: Student t {level:.0%} interval, green above 0)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def report(sweep_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Aggregate every ``*/summary.json`` under ``sweep_dir``; write ranking.json/.png.
    Returns the ranking rows and the excess-return rows."""
    summaries = [json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))]
    if not summaries:
        raise FileNotFoundError(f"no */summary.json under {sweep_dir}")
    rows, alpha = rank(summaries), excess(summaries)
    seeds = sorted(s["run"]["seed"] for s in summaries)
    out = {"seeds": seeds, "ranking": rows, "confidence": LEVEL, "excess": alpha}
    write_text(sweep_dir / "ranking.json", json.dumps(out, indent=2) + "\n")
    chart(sweep_dir / "ranking.png", rows, len(seeds), alpha)
    return rows, alpha


try:
    from hydra.experimental.callback import Callback
except ImportError:  # pragma: no cover - hydra is a dependency
    Callback = object  # type: ignore[assignment,misc]


class TournamentReport(Callback):
    """Hydra callback: after a multirun, rank the kinds over all jobs' summaries."""

    def on_multirun_end(self, config, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        rows, alpha = report(sweep_dir)
        print("\n" + table(rows))
        print(f"\nexcess return over buy-and-hold, mean over seeds with its {LEVEL:.0%} Student t interval:")
        print(excess_table(alpha))
        print(f"\nranking: {sweep_dir / 'ranking.json'}, {sweep_dir / 'ranking.png'}")
