"""Charts of a stored run, drawn from its database alone (``python -m qtg.report RUN_DIR``).

* ``report_prices.png``: per symbol, the last trade price per tick with the fair value and
  the news events that touched the symbol, and the traded volume as bars below;
* ``report_equity.png``: per strategy kind, the mean equity per agent at each portfolio
  snapshot and its change since the first one (runs with ``storage.portfolio_every``).

Long runs are drawn in buckets of ticks (at most :data:`MAX_POINTS` points per line): the
price is the last of each bucket and the volume its sum.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from components.money import SCALE
from qtg.core.files import save_figure
from qtg.hooks.storage import RunDB

MAX_POINTS = 4000
"""Most points drawn per line; longer runs are bucketed."""

EVENT_COLORS = {"earnings": "tab:green", "guidance": "tab:orange", "rate": "tab:red", "sector": "tab:purple"}


def draw_report(path_or_run_dir: str | Path, out: str | Path | None = None, run_id: int | None = None) -> list[Path]:
    """Draw the charts of run ``run_id`` (default: the newest in the file) into ``out``
    (default: the database's directory). Returns the files written. Raises
    :class:`qtg.hooks.storage.StorageError` when there is no readable run database."""
    with RunDB(path_or_run_dir) as db:
        rid = db.run_id(run_id)
        out_dir = Path(out) if out is not None else db.path.parent
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        if db.last_tick(rid) >= 0:
            written.append(plot_prices(db, rid, out_dir / "report_prices.png"))
        if db.sql("SELECT count(*) AS n FROM portfolio_snapshots WHERE run_id = ?", (rid,))["n"][0]:
            written.append(plot_equity(db, rid, out_dir / "report_equity.png"))
        return written


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def price_series(db: RunDB, run_id: int) -> dict[str, np.ndarray]:
    """Per tick bucket and symbol: tick [B] (the bucket's last tick), last and fair
    [B, S] (currency), volume [B, S] (shares, summed over the bucket)."""
    n_sym = len(db.symbols(run_id))
    last_tick = db.last_tick(run_id)
    step = max(1, math.ceil((last_tick + 1) / MAX_POINTS))
    q = db.sql(
        "SELECT tick / :step AS b, symbol, max(tick) AS tick, sum(volume) AS volume FROM ticks "
        "WHERE run_id = :run GROUP BY b, symbol ORDER BY b, symbol", {"step": step, "run": run_id})
    p = db.sql(
        "SELECT tick / :step AS b, symbol, last, fair FROM ticks WHERE run_id = :run "
        "AND (tick % :step = :step - 1 OR tick = :lt) ORDER BY b, symbol",
        {"step": step, "run": run_id, "lt": last_tick})
    buckets = int(q["b"].max()) + 1 if len(q["b"]) else 0
    out = {"tick": np.zeros(buckets, np.int64), "volume": np.zeros((buckets, n_sym), np.int64),
           "last": np.full((buckets, n_sym), np.nan), "fair": np.full((buckets, n_sym), np.nan)}
    if buckets:
        out["tick"][q["b"]] = q["tick"]
        out["volume"][q["b"], q["symbol"]] = q["volume"]
        out["last"][p["b"], p["symbol"]] = p["last"] / SCALE
        out["fair"][p["b"], p["symbol"]] = p["fair"] / SCALE
    out["step"] = step
    return out


def plot_prices(db: RunDB, run_id: int, path: Path) -> Path:
    """Per symbol: last price, fair value and event markers above, volume bars below."""
    plt = _plt()
    symbols = db.symbols(run_id)
    series = price_series(db, run_id)
    events = db.events(run_id=run_id)
    ncols = 1 if len(symbols) <= 3 else 2
    nrows = math.ceil(len(symbols) / ncols)
    fig = plt.figure(figsize=(7.5 * ncols, 3.2 * nrows))
    grid = fig.add_gridspec(nrows, ncols, hspace=0.45, wspace=0.25)
    t = series["tick"]
    for s, name in enumerate(symbols):
        sub = grid[s // ncols, s % ncols].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.05)
        ax_p = fig.add_subplot(sub[0])
        ax_v = fig.add_subplot(sub[1], sharex=ax_p)
        ax_p.plot(t, series["last"][:, s], color="black", lw=0.9, label="last trade")
        ax_p.plot(t, series["fair"][:, s], color="tab:red", lw=0.9, ls="--", label="fair value")
        shown = set()
        for tick, kind, hit in zip(events.get("tick", ()), events.get("kind", ()), events.get("symbols", ())):
            if name not in str(hit).split(";"):
                continue
            color = EVENT_COLORS.get(kind, "tab:gray")
            ax_p.axvline(tick, color=color, lw=0.8, ls=":", label=None if kind in shown else kind)
            shown.add(kind)
        ax_p.set_title(name, fontsize=10, loc="left")
        ax_p.set_ylabel("price")
        ax_p.grid(alpha=0.3)
        ax_p.legend(loc="upper left", fontsize=7, frameon=False, ncol=3)
        plt.setp(ax_p.get_xticklabels(), visible=False)
        step = series["step"]  # a bar covers its bucket, which ends at its tick
        ax_v.bar(t - (step - 1) / 2, series["volume"][:, s], width=step * 0.9, color="tab:gray")
        ax_v.set_ylabel("volume", fontsize=8)
        ax_v.set_xlabel("tick", fontsize=8)
    note = f", buckets of {series['step']} ticks" if series["step"] > 1 else ""
    fig.suptitle(f"run {run_id}: prices, fair value and news (ticks 0..{db.last_tick(run_id)}{note})")
    save_figure(fig, path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def equity_series(db: RunDB, run_id: int) -> dict[str, np.ndarray]:
    """At each portfolio snapshot: tick [P], and per kind [P, K] the total equity
    (currency) and the number of agents."""
    kinds = db.kinds(run_id)
    q = db.sql("SELECT tick, kind, sum(equity) AS equity, count(*) AS agents FROM portfolio_snapshots "
               "WHERE run_id = ? GROUP BY tick, kind ORDER BY tick, kind", (run_id,))
    ticks, row = np.unique(q["tick"], return_inverse=True)
    total = np.full((len(ticks), len(kinds)), np.nan)
    agents = np.zeros((len(ticks), len(kinds)), np.int64)
    total[row, q["kind"]] = q["equity"] / SCALE
    agents[row, q["kind"]] = q["agents"]
    return {"tick": ticks, "equity": total, "agents": agents}


def plot_equity(db: RunDB, run_id: int, path: Path) -> Path:
    """Mean equity per agent of each kind, and its change since the first snapshot."""
    plt = _plt()
    kinds = db.kinds(run_id)
    e = equity_series(db, run_id)
    mean = e["equity"] / np.maximum(e["agents"], 1)
    fig, (ax_e, ax_d) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for j, k in enumerate(kinds):
        label = f"{k['name']} ({k['stop'] - k['start']})"
        ax_e.plot(e["tick"], mean[:, j], marker=".", lw=1.0, label=label)
        ax_d.plot(e["tick"], mean[:, j] - mean[0, j], marker=".", lw=1.0, label=label)
    ax_e.set_ylabel("mean equity per agent")
    ax_d.set_ylabel("change since first snapshot")
    ax_d.axhline(0, color="black", lw=0.5)
    ax_d.set_xlabel("tick")
    for ax in (ax_e, ax_d):
        ax.grid(alpha=0.3)
    ax_e.legend(loc="upper left", fontsize=8, frameon=False, ncol=2)
    fig.suptitle(f"run {run_id}: equity by strategy kind (portfolio snapshots)")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
