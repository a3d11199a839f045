"""``chart.png``: every symbol of a run, and the P&L of each strategy kind.

Up to :data:`GRID_MAX_SYMBOLS` symbols, small multiples: one cell per symbol (price with
the best bid/ask band, fair value and Bollinger bands; RSI; MACD; spread; volume), in a
grid whose figure grows with the count. Beyond, one panel per sector (a sector of more than
:data:`~qtg.reports.analysis.GROUP_MAX_SYMBOLS` symbols is split over several): every
symbol as a thin line (its mid where both sides quote, else its last trade), indexed to 100
at the first price, the sector's mean in black and its mean fair value dashed, the best and
worst symbol labelled at their ends; under it the sector's volume. Legends sit outside the
axes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from components.money import SCALE
from qtg.core.files import save_figure
from qtg.hooks import Recorder
from qtg.reports.analysis import indexed, symbol_groups
from qtg.reports.summary import CHART_INDICATORS, agents_text, indicators_of

GRID_MAX_SYMBOLS = 16
"""Up to this many symbols, one cell of five panels per symbol; beyond, one panel per sector."""

GRID_COLUMNS = 4
"""Columns of the grid of symbol cells (fewer when there are fewer symbols)."""

def chart(path: Path, sim, rec: Recorder) -> None:
    """Write chart.png for a run (see the module doc)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = chart_figure(sim.static, rec.arrays())
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def chart_figure(static, hist: dict[str, np.ndarray]):
    """The chart of a run as a matplotlib Figure: ``static`` (symbols, sectors, kinds,
    agents) and the recorded history ``hist`` (:meth:`qtg.hooks.Recorder.arrays`, units).
    Each symbol's price axes is labelled ``price <symbol>``; in the sector view each
    symbol's line is labelled with its name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(static.symbols)
    ticks = np.arange(len(hist["last"]))
    if n <= GRID_MAX_SYMBOLS:
        cols = min(GRID_COLUMNS, math.ceil(math.sqrt(n)))
        rows, cell_h, cell_w = math.ceil(n / cols), 4.4, 4.8
    else:
        groups = _groups(static)
        cols = min(3, len(groups))
        rows, cell_h, cell_w = math.ceil(len(groups) / cols), 3.8, 5.6
    fig = plt.figure(figsize=(cell_w * cols + 2.2, cell_h * rows + 3.4), layout="constrained")
    outer = fig.add_gridspec(rows + 1, cols, height_ratios=[cell_h] * rows + [2.6])
    if n <= GRID_MAX_SYMBOLS:
        ind = indicators_of(hist)  # every symbol's, in one replay
        handles = [_symbol_cell(fig, outer[s // cols, s % cols], s, static.symbols[s], hist, ticks, ind)
                   for s in range(n)][0]
        fig.legend(*handles, loc="outside lower center", ncol=len(handles[0]), fontsize=8, frameon=False)
    else:
        for g, (title, members) in enumerate(groups):
            _sector_panel(fig, outer[g // cols, g % cols], title, members, static.symbols, hist, ticks)
    _pnl_panel(fig.add_subplot(outer[rows, :]), static, hist, ticks)
    pool = static.background.members if static.background is not None else 0
    fig.suptitle(f"qtg run: {len(ticks)} ticks, {n} symbols, {agents_text(static.n_agents, pool)}")
    return fig


def _groups(static) -> list[tuple[str, list[int]]]:
    sector_of = static.sector_of or (0,) * len(static.symbols)
    return symbol_groups([static.sectors[i] for i in sector_of])


def _symbol_cell(fig, spec, s: int, name: str, hist, ticks, ind) -> tuple[list, list[str]]:
    """Five panels for symbol ``s``; returns the price and MACD legend entries."""
    (bp, bk), rp, mp = CHART_INDICATORS["bollinger"], CHART_INDICATORS["rsi"], CHART_INDICATORS["macd"]
    sub = spec.subgridspec(5, 1, height_ratios=(3, 1, 1, 1, 1), hspace=0.0)
    ax_p = fig.add_subplot(sub[0], label=f"price {name}")
    ax_r, ax_m, ax_s, ax_v = (fig.add_subplot(sub[i], sharex=ax_p) for i in range(1, 5))
    bid = np.where(hist["bid"][:, s] > 0, hist["bid"][:, s], np.nan) / SCALE
    ask = np.where(hist["ask"][:, s] > 0, hist["ask"][:, s], np.nan) / SCALE
    ax_p.fill_between(ticks, bid, ask, color="tab:blue", alpha=0.25, lw=0, label="best bid / ask")
    ax_p.plot(ticks, hist["last"][:, s] / SCALE, color="black", lw=0.8, label="last trade")
    ax_p.plot(ticks, hist["fair"][:, s] / SCALE, color="tab:red", lw=0.8, ls="--", label="fair value")
    ax_p.plot(ticks, ind["bb_middle"][:, s], color="tab:purple", lw=0.6, label=f"SMA({bp})")
    ax_p.plot(ticks, ind["bb_upper"][:, s], color="tab:purple", lw=0.5, ls="--", label=f"Bollinger({bp}, {bk:g})")
    ax_p.plot(ticks, ind["bb_lower"][:, s], color="tab:purple", lw=0.5, ls="--")
    ax_p.set_title(name, loc="left", fontsize=9, fontweight="bold", pad=2)
    ax_p.set_ylabel("price", fontsize=7)
    ax_r.plot(ticks, ind["rsi"][:, s], color="tab:green", lw=0.7)
    for level in (30, 70):
        ax_r.axhline(level, color="gray", lw=0.5, ls=":")
    ax_r.set_ylim(0, 100)
    ax_r.set_ylabel(f"RSI {rp}", fontsize=7)
    ax_m.plot(ticks, ind["macd"][:, s], color="tab:orange", lw=0.7, label="MACD " + ",".join(map(str, mp)))
    ax_m.plot(ticks, ind["macd_signal"][:, s], color="tab:gray", lw=0.7, label="MACD signal")
    ax_m.axhline(0, color="black", lw=0.4)
    ax_m.set_ylabel("MACD", fontsize=7)
    ax_s.plot(ticks, np.round(ask - bid, 6), color="tab:brown", lw=0.7)  # no float noise in the labels
    ax_s.set_ylabel("spread", fontsize=7)
    ax_s.ticklabel_format(axis="y", useOffset=False)
    _volume(ax_v, ticks, hist["volume"][:, s])
    ax_v.set_ylabel("volume", fontsize=7)
    for ax in (ax_p, ax_r, ax_m, ax_s, ax_v):
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.25)
        if ax is not ax_v:
            ax.tick_params(labelbottom=False)
    hp, lp = ax_p.get_legend_handles_labels()
    hm, lm = ax_m.get_legend_handles_labels()
    return hp + hm, lp + lm


def _sector_panel(fig, spec, title: str, members: list[int], symbols, hist, ticks) -> None:
    """Every symbol of a sector as a thin line (its mid, first = 100), the sector mean and its
    mean fair value; the best and worst symbol labelled at their ends; the sector's volume."""
    sub = spec.subgridspec(2, 1, height_ratios=(3, 1), hspace=0.0)
    ax = fig.add_subplot(sub[0], label=f"sector {title}")
    ax_v = fig.add_subplot(sub[1], sharex=ax)
    bid, ask, last = (hist[k][:, members].astype(np.float64) for k in ("bid", "ask", "last"))
    # The mid where both sides quote (the last trade bounces between them), else the last trade.
    last = np.where((bid > 0) & (ask > 0), (bid + ask) / 2, np.where(last > 0, last, np.nan))
    fair = np.where(hist["fair"][:, members] > 0, hist["fair"][:, members], np.nan).astype(np.float64)
    index, fair_index = indexed(last, fair)
    colors = _plt_colors(len(members))
    for j, s in enumerate(members):
        ax.plot(ticks, index[:, j], lw=0.5, alpha=0.7, color=colors[j], label=symbols[s])
    with np.errstate(invalid="ignore"):
        ax.plot(ticks, np.nanmean(index, axis=1), color="black", lw=1.4, label="_mean")
        ax.plot(ticks, np.nanmean(fair_index, axis=1), color="tab:red", lw=1.0, ls="--", label="_fair")
    end = index[-1] if len(index) else np.array([])
    if np.isfinite(end).any():
        for j in {int(np.nanargmax(end)), int(np.nanargmin(end))}:
            ax.annotate(symbols[members[j]], (ticks[-1], end[j]), xytext=(2, 0), textcoords="offset points",
                        fontsize=7, va="center", color=colors[j])
    ax.set_title(f"{title}: {len(members)} symbols (black: mean, red dashed: mean fair value)",
                 loc="left", fontsize=8, pad=2)
    ax.set_ylabel("price (first = 100)", fontsize=7)
    ax.tick_params(labelsize=6, labelbottom=False)
    ax.grid(alpha=0.25)
    ax.margins(x=0.06)
    _volume(ax_v, ticks, hist["volume"][:, members].sum(axis=1))
    ax_v.set_ylabel("volume", fontsize=7)
    ax_v.tick_params(labelsize=6)
    ax_v.grid(alpha=0.25)


def _volume(ax, ticks, volume) -> None:
    """Each tick's volume as a bar one tick wide, centred on the tick: one filled step
    outline for the whole run (a bar per tick is an artist per tick: 10,000 of them in a
    default run's chart, 7 of its 9 seconds)."""
    edges = np.append(ticks, ticks[-1] + 1) - 0.5 if len(ticks) else np.array([0.0])
    ax.stairs(volume, edges, fill=True, color="tab:gray", lw=0)


def _plt_colors(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab20"]
    return [cmap(i % 20) for i in range(n)]


def _pnl_panel(ax, static, hist, ticks) -> None:
    """P&L of each strategy kind over the run (currency), its legend outside on the right."""
    if len(hist["equity"]):
        eq = hist["equity"]
        for j, k in enumerate(static.kinds):
            ax.plot(ticks, (eq[:, j] - eq[0, j]) / SCALE, lw=1.0, label=f"{k.name} ({k.count:,})")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel("P&L by kind")
    ax.set_xlabel("tick")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    ax.grid(alpha=0.3)
