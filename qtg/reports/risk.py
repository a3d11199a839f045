"""Risk statistics summed up for reports: per group of agents (a strategy kind), the count
and mean, median, min and max of each statistic that :func:`systems.risk.risk_metrics`
computes on the device, and of each agent's return in excess of buy-and-hold. Host side,
JSON-able."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from components.risk import RiskMetrics

_SUMMARY_STATS = ("mean", "median", "min", "max")


def _describe(values: np.ndarray) -> dict[str, Any]:
    """count and mean/median/min/max of ``values`` as Python floats (None when empty)."""
    out: dict[str, Any] = {"count": int(values.size)}
    for name in _SUMMARY_STATS:
        out[name] = float(getattr(np, name)(values)) if values.size else None
    return out


def summarize_groups(
    metrics: RiskMetrics, groups: Sequence[tuple[str, int, int]]
) -> dict[str, dict[str, Any]]:
    """Aggregate metrics over contiguous row groups, for reports. Host side, JSON-able.

    ``groups`` are ``(name, start, stop)`` row ranges, e.g. one per strategy kind:
    ``[(k.name, k.start, k.stop) for k in static.kinds]``. Returns, per name::

        {"count": rows,
         "sharpe": {"count", "mean", "median", "min", "max"},        # sharpe_ready rows
         "var": {...},                                               # var_ready rows
         "max_drawdown": {...}, "total_return": {...}}               # all rows

    Every value is a Python int or float, or None for a statistic of no rows.
    """
    host = jax.tree.map(np.asarray, metrics)
    n = host.equity.shape[0]
    seen: set[str] = set()
    out: dict[str, dict[str, Any]] = {}
    for group in groups:
        name, start, stop = group
        if name in seen:
            raise ValueError(f"summarize_groups: group name {name!r} appears twice")
        if not (0 <= start <= stop <= n):
            raise ValueError(
                f"summarize_groups: group {name!r} rows [{start}, {stop}) not within [0, {n}]"
            )
        seen.add(name)
        rows = slice(start, stop)
        sharpe_ok = host.sharpe_ready[rows]
        var_ok = host.var_ready[rows]
        out[str(name)] = {
            "count": int(stop - start),
            "sharpe": _describe(host.sharpe[rows][sharpe_ok]),
            "max_drawdown": _describe(host.max_drawdown[rows]),
            "var": _describe(host.var[rows][var_ok]),
            "total_return": _describe(host.total_return[rows]),
        }
    return out


def excess_returns(
    cash0: np.ndarray, position0: np.ndarray, marks0: np.ndarray, marks1: np.ndarray, equity1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each agent's total return and its opening portfolio's buy-and-hold return. f64[N], f64[N]

    ``cash0`` i64[N] units and ``position0`` i64[N, S] shares: the opening holdings;
    ``marks0``, ``marks1`` f64[S] units: the prices they are marked at, at the opening and
    at the end (the end's are those of ``equity1``, f64[N] units, each agent's equity at
    the end). Total return ``equity1 / equity0 - 1``; buy-and-hold
    ``(cash0 + position0 @ marks1) / equity0 - 1``, the return of the opening portfolio
    left untouched. Both 0 where the opening equity is not positive. Their difference is
    the agent's excess return: what its trading added, net of the market's moves on what
    it started with.
    """
    pos0 = np.asarray(position0, np.float64)
    cash0 = np.asarray(cash0, np.float64)
    equity0 = cash0 + pos0 @ np.asarray(marks0, np.float64)
    held = cash0 + pos0 @ np.asarray(marks1, np.float64)
    base = equity0 > 0
    safe = np.where(base, equity0, 1.0)
    total = np.where(base, np.asarray(equity1, np.float64) / safe - 1.0, 0.0)
    hold = np.where(base, held / safe - 1.0, 0.0)
    return total, hold


def summarize_excess(
    total: np.ndarray, hold: np.ndarray, groups: Sequence[tuple[str, int, int]]
) -> dict[str, dict[str, Any]]:
    """Per group (``(name, start, stop)`` rows): count and mean/median/min/max of the excess
    return ``total - hold`` (:func:`excess_returns`), with the mean total and buy-and-hold
    returns. Python floats, None for a group of no rows."""
    excess = total - hold
    out: dict[str, dict[str, Any]] = {}
    for name, start, stop in groups:
        rows = slice(start, stop)
        out[str(name)] = {
            **_describe(excess[rows]),
            "return_mean": float(total[rows].mean()) if stop > start else None,
            "hold_mean": float(hold[rows].mean()) if stop > start else None,
        }
    return out
