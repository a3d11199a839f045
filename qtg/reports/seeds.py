"""The stylized facts over many seeds: a verdict per seed x symbol series, pass rates per
fact and scale, a table and a figure.

The command is ``python -m qtg.validate --seeds N`` (qtg/validate.py). Each series is one
symbol of one seed's run; each fact of :data:`analysis.SCALE_FACTS` is tested on it at
each scale of :data:`analysis.SCALES` with the same thresholds as a single run (the band is
the series' own ``1.96 / sqrt(blocks)``), and mean reversion (AR(1) of log(price / fair):
``0 < b < 1`` and the Dickey-Fuller statistic below :data:`analysis.DF_CRITICAL`) at the
tick level. A series whose statistic cannot be computed (fewer than 30 blocks, a constant
series, no fair value) is n/a: left out of the pass rate and counted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from qtg.core.files import save_figure
from qtg.reports import analysis

MEAN_REVERSION = "mean reversion"
"""The tick-level fact tested per series besides SCALE_FACTS (scale 1 only)."""


def series_verdicts(prices: dict[str, Any], scales: tuple[int, ...] = analysis.SCALES) -> dict[str, Any]:
    """Per symbol of one run: ``{fact name: {scale: True/False/None}}`` for each fact of
    SCALE_FACTS at each scale, and ``mean reversion`` at scale 1."""
    rv = analysis.returns_and_volume(prices)
    mis = analysis.log_mispricing(prices)
    out: dict[str, Any] = {}
    for s, (r, v) in rv.items():
        stats = {k: analysis.scale_statistics(r, v, k) for k in scales}
        facts: dict[str, dict[str, bool | None]] = {}
        for name, key, _threshold, test in analysis.SCALE_FACTS:
            facts[name] = {}
            for k in scales:
                value = stats[k][key]
                ok = value is not None and math.isfinite(value)
                facts[name][str(k)] = bool(test(value, stats[k])) if ok else None
        fit = analysis.ar1_fit(mis[s]) if s in mis else None
        facts[MEAN_REVERSION] = {"1": None if fit is None else
                                 bool(0 < fit["b"] < 1 and fit["df_stat"] < analysis.DF_CRITICAL)}
        out[s] = facts
    return out


def fact_thresholds() -> dict[str, str]:
    """Each fact's threshold text, in table order."""
    out = {name: threshold for name, _key, threshold, _test in analysis.SCALE_FACTS}
    out[MEAN_REVERSION] = f"0 < b < 1, t = (b-1)/se(b) < {analysis.DF_CRITICAL:g}"
    return out


def pass_rates(verdicts: list[dict[str, dict[str, bool | None]]],
               scales: tuple[int, ...] = analysis.SCALES) -> list[dict[str, Any]]:
    """Aggregate per-series verdicts (one ``{fact: {scale: verdict}}`` per series) into one
    row per fact: ``by_scale[scale] = {passed, failed, not_applicable, total, rate}`` where
    ``total = passed + failed`` (n/a series left out) and ``rate = passed / total`` (None
    when total is 0). A fact missing a scale (mean reversion above scale 1) has no entry."""
    thresholds = fact_thresholds()
    names = list(thresholds) + sorted({f for v in verdicts for f in v} - set(thresholds))
    rows = []
    for name in names:
        by_scale = {}
        for k in scales:
            got = [v[name][str(k)] for v in verdicts if name in v and str(k) in v[name]]
            if not got and (name == MEAN_REVERSION and k != 1):
                continue
            p, f = sum(g is True for g in got), sum(g is False for g in got)
            by_scale[str(k)] = {"passed": p, "failed": f, "not_applicable": sum(g is None for g in got),
                                "total": p + f, "rate": p / (p + f) if p + f else None}
        rows.append({"name": name, "threshold": thresholds.get(name, ""), "by_scale": by_scale})
    return rows


def format_rates_table(rows: list[dict[str, Any]], scales: tuple[int, ...] = analysis.SCALES) -> str:
    """Aligned text table: a row per fact, a column per scale (``rate passed/total``, with
    ``+n n/a`` when series were left out; ``-`` where the fact is not tested), the threshold last."""
    head = ("fact", *(f"{k} tick" + ("s" if k > 1 else "") for k in scales), "threshold")
    table = [head]
    for row in rows:
        cells = []
        for k in scales:
            c = row["by_scale"].get(str(k))
            if c is None:
                cells.append("-")
                continue
            rate = "n/a" if c["rate"] is None else f"{c['rate']:.0%}"
            na = f" +{c['not_applicable']} n/a" if c["not_applicable"] else ""
            cells.append(f"{rate} {c['passed']}/{c['total']}{na}")
        table.append((row["name"], *cells, row["threshold"]))
    return analysis.text_table(table, left={0, len(head) - 1})


def curves(all_prices: list[dict[str, Any]], scales: tuple[int, ...] = analysis.SCALES,
           max_lag: int = analysis.ACF_LAGS) -> dict[str, Any]:
    """The figure's data over every series of every run: ``abs_z`` (pooled ``|r|`` at one
    tick, each series divided by its own std), ``acf_abs`` (scale -> mean ACF of ``|r|`` at
    lags 1..max_lag over the series long enough, and ``n`` = the median number of blocks),
    ``acf_mispricing`` (mean ACF of log(price / fair)) and ``half_life`` (median AR(1)
    half-life over series, ticks)."""
    z, acf_abs, mis_acf, halves = [], {k: [] for k in scales}, [], []
    blocks = {k: [] for k in scales}
    for prices in all_prices:
        for r in analysis.log_returns(prices).values():
            if len(r) >= analysis.MIN_SAMPLES and r.std() > 0:
                z.append(np.abs(r - r.mean()) / r.std())
            for k in scales:
                x = analysis.aggregate(r, k)
                c = analysis.acf(np.abs(x), max_lag)
                if c is not None:
                    acf_abs[k].append(c)
                    blocks[k].append(len(x))
        for x in analysis.log_mispricing(prices).values():
            c = analysis.acf(x[np.isfinite(x)], max_lag)
            if c is not None:
                mis_acf.append(c)
            fit = analysis.ar1_fit(x)
            if fit is not None and fit["half_life"] is not None:
                halves.append(fit["half_life"])

    def mean_curve(cs):
        if not cs:
            return None
        n = min(len(c) for c in cs)
        return np.mean(np.stack([c[:n] for c in cs]), axis=0)

    return {
        "abs_z": np.concatenate(z) if z else np.array([]),
        "acf_abs": {k: {"acf": mean_curve(acf_abs[k]), "series": len(acf_abs[k]),
                        "n": int(np.median(blocks[k])) if blocks[k] else 0} for k in scales},
        "acf_mispricing": mean_curve(mis_acf),
        "half_life": float(np.median(halves)) if halves else None,
    }


def plot_seeds(c: dict[str, Any], path: str | Path, title: str) -> None:
    """Three panels: the log-log CCDF of pooled standardised ``|r|`` against ``|N(0, 1)|``
    (the Gaussian of the same variance); the mean ACF of ``|r|`` vs lag at each scale with
    its 95% white-noise band; the mean ACF of log(price / fair) vs lag with the AR(1)
    half-life marked."""
    plt = analysis._plt()
    fig, (ax_c, ax_a, ax_m) = plt.subplots(1, 3, figsize=(16, 4.8))
    z = np.sort(c["abs_z"])
    z = z[z > 0]
    if len(z):
        ccdf = 1.0 - np.arange(len(z)) / len(z)
        ax_c.loglog(z, ccdf, color="tab:blue", lw=1, label=f"|r| / std ({len(z):,} returns)")
        xs = np.logspace(math.log10(max(z[0], 1e-3)), math.log10(max(z[-1], 5.0)), 200)
        ax_c.loglog(xs, [math.erfc(x / math.sqrt(2)) for x in xs], color="black", lw=1, ls="--", label="Gaussian, same variance")
        ax_c.set_ylim(max(0.5 / len(z), 1e-7), 1.5)
        ax_c.set_xlim(left=max(float(z[0]), 1e-2))
        ax_c.legend(fontsize=8, frameon=False)
    else:
        ax_c.text(0.5, 0.5, "too few returns", ha="center", transform=ax_c.transAxes)
    ax_c.set_title("CCDF of |r| (1 tick), pooled over series", fontsize=10)
    ax_c.set_xlabel("|r| / std")
    ax_c.set_ylabel("P(|r| > x)")
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    drawn = False
    for (k, a), color in zip(c["acf_abs"].items(), colors):
        if a["acf"] is None:
            continue
        lags = np.arange(1, len(a["acf"]) + 1)
        ax_a.plot(lags, a["acf"], color=color, lw=1.2, marker=".", label=f"{k} tick{'s' if k > 1 else ''} "
                  f"({a['series']} series)")
        ax_a.axhline(analysis.band(a["n"]), color=color, lw=0.8, ls=":")
        drawn = True
    if drawn:
        ax_a.axhline(0, color="black", lw=0.5)
        ax_a.legend(fontsize=8, frameon=False, title="dotted: 1.96/sqrt(blocks)", title_fontsize=8)
    else:
        ax_a.text(0.5, 0.5, "too few returns", ha="center", transform=ax_a.transAxes)
    ax_a.set_title("mean ACF of |r| by scale", fontsize=10)
    ax_a.set_xlabel("lag (blocks)")
    m = c["acf_mispricing"]
    if m is not None:
        lags = np.arange(1, len(m) + 1)
        ax_m.plot(lags, m, color="tab:blue", lw=1.2, marker=".", label="mean ACF of log(price / fair)")
        ax_m.axhline(0, color="black", lw=0.5)
        hl = c["half_life"]
        if hl is not None:
            ax_m.axvline(hl, color="tab:red", lw=1, ls="--", label=f"AR(1) half-life {hl:.1f} ticks (median)")
            ax_m.axhline(0.5, color="gray", lw=0.5, ls=":")
            ax_m.plot(lags, 0.5 ** (lags / hl), color="tab:red", lw=0.8, ls=":", label="AR(1) b^lag")
        ax_m.legend(fontsize=8, frameon=False)
    else:
        ax_m.text(0.5, 0.5, "no fair value", ha="center", transform=ax_m.transAxes)
    ax_m.set_title("mispricing decay", fontsize=10)
    ax_m.set_xlabel("lag (ticks)")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
