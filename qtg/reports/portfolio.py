"""Portfolio risk outputs of a run: summary.json section, agents.csv columns, heatmap.

Host side, end of run. Reads the running statistics that ``systems.risk.update_risk``
keeps (symbol return moments, each agent's co-moments with the equal-weight index) and
the final positions; exposures are valued at the last trade price of each symbol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from components.world import WorldState, WorldStatic
from qtg.core.files import save_figure
from systems.risk import beta, exposure, index_stats, symbol_correlation

CORRELATION_DECIMALS = 4


def _sector_of(static: WorldStatic) -> np.ndarray:
    """Sector index per symbol, i64[S] (an empty ``static.sector_of`` means all in 0)."""
    if static.sector_of:
        return np.asarray(static.sector_of, np.int64)
    return np.zeros(static.n_symbols, np.int64)


def _exposure(static: WorldStatic, state: WorldState):
    """End-of-run exposure at the last price, as host numpy arrays."""
    ex = exposure(state.wallet.position, state.market.last, _sector_of(static), len(static.sectors))
    return jax.tree.map(np.asarray, ex)


def _float(x: float, digits: int = 6) -> float | None:
    """A JSON-able float to ``digits`` significant digits, None when not finite."""
    x = float(x)
    return float(f"{x:.{digits}g}") if np.isfinite(x) else None


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def _round_cur(x: float | None) -> float | None:
    """Currency rounded to the fixed-point unit (4 decimals)."""
    return None if x is None else round(x, 4)


def _pair_means(corr: np.ndarray, sector_of: np.ndarray) -> tuple[float | None, float | None]:
    """Mean correlation over symbol pairs i < j in the same sector, and across sectors.

    Pairs whose correlation is NaN (a constant symbol) are left out; None when no pair is.
    """
    i, j = np.triu_indices(corr.shape[0], k=1)
    c = corr[i, j]
    same = sector_of[i] == sector_of[j]
    ok = np.isfinite(c)
    return _mean(c[same & ok]), _mean(c[~same & ok])


def portfolio_summary(static: WorldStatic, state: WorldState) -> dict[str, Any]:
    """The portfolio-risk section of ``summary.json`` (JSON-able, no NaN).

    ::

        {"index": {"ticks", "mean", "vol"},          # per-tick equal-weight index return
         "symbols": [...], "sectors": [...],         # sector name of each symbol
         "correlation": [[...], ...],                # S x S, rounded, None where undefined
         "correlation_within_sector": float|None,    # mean over same-sector pairs
         "correlation_across_sectors": float|None,   # mean over other pairs
         "by_kind": {kind: {"agents",
                            "beta": {"count", "mean", "median"},   # agents with a beta
                            "gross_exposure", "net_exposure",      # mean per agent, currency
                            "by_sector": {sector: {"gross", "net"}}}}}
    """
    risk = state.risk
    mean, vol = (float(x) for x in index_stats(risk))
    corr = np.asarray(symbol_correlation(risk))
    sector_of = _sector_of(static)
    within, across = _pair_means(corr, sector_of)
    b = np.asarray(beta(risk))
    ex = _exposure(static, state)

    by_kind: dict[str, Any] = {}
    for k in static.kinds:
        rows = slice(k.start, k.stop)
        kb = b[rows][np.isfinite(b[rows])]
        by_kind[k.name] = {
            "agents": k.count,
            "beta": {
                "count": int(kb.size),
                "mean": _float(kb.mean()) if kb.size else None,
                "median": _float(np.median(kb)) if kb.size else None,
            },
            "gross_exposure": _round_cur(_mean(ex.gross[rows])),
            "net_exposure": _round_cur(_mean(ex.net[rows])),
            "by_sector": {
                name: {
                    "gross": _round_cur(_mean(ex.gross_by_sector[rows, j])),
                    "net": _round_cur(_mean(ex.by_sector[rows, j])),
                }
                for j, name in enumerate(static.sectors)
            },
        }

    return {
        "index": {"ticks": int(risk.symbol_count), "mean": _float(mean), "vol": _float(vol)},
        "symbols": list(static.symbols),
        "sectors": [static.sectors[j] for j in sector_of],
        "correlation": [
            [round(float(x), CORRELATION_DECIMALS) if np.isfinite(x) else None for x in row]
            for row in corr
        ],
        "correlation_within_sector": _float(within, 4) if within is not None else None,
        "correlation_across_sectors": _float(across, 4) if across is not None else None,
        "by_kind": by_kind,
    }


def portfolio_columns(static: WorldStatic, state: WorldState) -> dict[str, np.ndarray]:
    """Per-agent columns for ``agents.csv``, each f64[N]: ``beta`` (NaN where undefined),
    ``gross_exposure``, ``net_exposure`` and ``exposure_<sector>`` (net, per sector name),
    exposures in currency at the last price."""
    ex = _exposure(static, state)
    out = {
        "beta": np.asarray(beta(state.risk)),
        "gross_exposure": ex.gross,
        "net_exposure": ex.net,
    }
    for j, name in enumerate(static.sectors):
        out[f"exposure_{name}"] = ex.by_sector[:, j]
    return out


def plot_correlation(static: WorldStatic, state: WorldState, path: Path | str) -> None:
    """Heatmap of the symbol return correlations, symbols grouped by sector, to ``path``.

    Undefined entries (a constant symbol) are grey; values are written in the cells when
    there are at most 16 symbols.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corr = np.asarray(symbol_correlation(state.risk))
    sector_of = _sector_of(static)
    order = np.argsort(sector_of, kind="stable")
    corr = corr[np.ix_(order, order)]
    names = [static.symbols[i] for i in order]
    secs = sector_of[order]
    s = len(names)

    size = max(4.0, 0.5 * s + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(corr), cmap=cmap, vmin=-1.0, vmax=1.0)
    ax.set_xticks(range(s), names, rotation=90, fontsize=8)
    ax.set_yticks(range(s), names, fontsize=8)
    # Sector blocks: boundary lines and the sector name above each block.
    starts = [0] + [i for i in range(1, s) if secs[i] != secs[i - 1]]
    blocks = list(zip(starts, starts[1:] + [s]))
    for a, _ in blocks[1:]:
        ax.axhline(a - 0.5, color="k", lw=1.0)
        ax.axvline(a - 0.5, color="k", lw=1.0)
    top = ax.secondary_xaxis("top")
    centres = [(a + b - 1) / 2 for a, b in blocks]
    top.set_xticks(centres, [static.sectors[secs[a]] for a, _ in blocks], fontsize=8)
    top.tick_params(length=0)
    if s <= 16:
        for i in range(s):
            for j in range(s):
                if np.isfinite(corr[i, j]):
                    ax.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=6,
                            color="w" if abs(corr[i, j]) > 0.6 else "k")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="correlation")
    ax.set_title(f"Correlation of per-tick symbol returns ({int(state.risk.symbol_count)} ticks)",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
