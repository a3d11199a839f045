"""Risk statistics summed up for reports: per group of agents (a strategy kind), the count
and mean, median, min and max of each statistic that :func:`systems.risk.risk_metrics`
computes on the device. Host side, JSON-able."""

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
