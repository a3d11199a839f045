"""risk: per-agent equity -> running risk statistics (every tick) and risk metrics (on demand).

The work is split so the tick stays O(N):

* ``update_risk`` (every tick): last equity, peak and maximum drawdown, Welford mean and
  variance of the per-tick returns, and one write per agent into its VaR ring buffer.
* ``risk_metrics`` (on demand, e.g. for a report or a UI refresh): total return, Sharpe
  from the running moments, and the historical VaR, which needs an order statistic of
  each agent's window (O(N W log W), too slow to run every tick at 100k+ agents).

Conventions and edge cases:

* Return ``r_t = e_t / e_{t-1} - 1``. When ``e_{t-1} <= 0`` (or the ratio is not finite) the
  tick has no valid return: the moments, ``count`` and the window are left as they were.
* Sharpe uses the sample standard deviation (ddof=1):
  ``mean / std * sqrt(periods_per_year)``. Not ready (reported 0) below 2 valid returns
  or when std == 0 exactly (e.g. flat equity).
* Maximum drawdown is ``max_t (peak_t - e_t) / peak_t`` with the peak running from the
  initial equity; a tick where ``peak_t <= 0`` contributes 0. It exceeds 1 when equity
  falls below zero from a positive peak.
* VaR is ``-quantile(window, 1 - c)`` with numpy's default linear interpolation over the
  last W valid returns: a positive number is a loss fraction. The sign is kept as
  computed, so it is negative when even the 1 - c tail of the window is a gain. The
  window stores float32 returns (to bound memory), so VaR is the quantile of the float32
  returns (interpolated in float64): about 7 significant digits. Not ready (reported 0)
  until the agent has W valid returns.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from components.risk import RiskMetrics, RiskSpec, RiskState


def init_risk(spec: RiskSpec, equity0: jax.Array) -> RiskState:
    """Fresh risk state for agents whose equity is ``equity0`` (f64[N] units) at the start."""
    e0 = jnp.asarray(equity0, jnp.float64)
    if e0.ndim != 1:
        raise ValueError(f"equity0 must be one value per agent, shape (N,), got {e0.shape}")
    n = e0.shape[0]
    zeros = jnp.zeros(n, jnp.float64)
    return RiskState(
        equity=e0,
        equity0=e0,
        peak=e0,
        max_drawdown=zeros,
        mean=zeros,
        m2=zeros,
        count=jnp.zeros(n, jnp.int32),
        window=jnp.zeros((n, spec.var_window), jnp.float32),
    )


@functools.partial(jax.jit, static_argnames=("spec",))
def update_risk(spec: RiskSpec, state: RiskState, equity: jax.Array) -> RiskState:
    """Fold one tick's equity (f64[N] units) into the running statistics. O(N).

    Pure: returns a new state. Called inside a jitted tick that donates the world state,
    the window write happens in place; called alone, as here, XLA copies the window.
    """
    e = jnp.asarray(equity, jnp.float64)
    prev = state.equity
    ratio = e / jnp.where(prev > 0, prev, 1.0)
    valid = (prev > 0) & jnp.isfinite(ratio)
    r = jnp.where(valid, ratio - 1.0, 0.0)

    # Welford, skipping rows without a valid return.
    n = state.count + valid.astype(state.count.dtype)
    delta = r - state.mean
    mean = state.mean + jnp.where(valid, delta / jnp.maximum(n, 1), 0.0)
    m2 = state.m2 + jnp.where(valid, delta * (r - mean), 0.0)

    peak = jnp.maximum(state.peak, e)
    dd = jnp.where(peak > 0, (peak - e) / jnp.where(peak > 0, peak, 1.0), 0.0)
    max_drawdown = jnp.maximum(state.max_drawdown, dd)

    # Each agent writes its own next ring slot; rows without a valid return are dropped.
    w = spec.var_window
    rows = jnp.arange(e.shape[0])
    col = jnp.where(valid, state.count % w, w)
    window = state.window.at[rows, col].set(r.astype(state.window.dtype), mode="drop")

    return RiskState(
        equity=e,
        equity0=state.equity0,
        peak=peak,
        max_drawdown=max_drawdown,
        mean=mean,
        m2=m2,
        count=n,
        window=window,
    )


def _quantile_positions(spec: RiskSpec) -> tuple[int, int, float]:
    """numpy's linear-interpolation positions for quantile ``1 - c`` of W sorted values.

    Same float64 arithmetic as ``numpy.quantile``: virtual index ``q * (W - 1)``.
    """
    q = 1.0 - spec.var_confidence
    virtual = q * (spec.var_window - 1)
    lo = int(math.floor(virtual))
    hi = min(lo + 1, spec.var_window - 1)
    return lo, hi, virtual - lo


@functools.partial(jax.jit, static_argnames=("spec",))
def risk_metrics(spec: RiskSpec, state: RiskState) -> RiskMetrics:
    """Risk metrics per agent from the running state (see the module doc for conventions)."""
    n = state.count
    std = jnp.sqrt(jnp.where(n >= 2, state.m2 / jnp.maximum(n - 1, 1), 0.0))
    sharpe_ready = (n >= 2) & (std > 0)
    sharpe = jnp.where(
        sharpe_ready,
        state.mean / jnp.where(sharpe_ready, std, 1.0) * math.sqrt(spec.periods_per_year),
        0.0,
    )
    has_base = state.equity0 > 0
    total_return = jnp.where(
        has_base, state.equity / jnp.where(has_base, state.equity0, 1.0) - 1.0, 0.0
    )

    # Only the two order statistics around the quantile are needed: the (hi + 1) smallest
    # returns, i.e. top_k of the negated window, which is cheaper than a full sort.
    lo, hi, gamma = _quantile_positions(spec)
    smallest = -jax.lax.top_k(-state.window, hi + 1)[0]  # f32[N, hi+1], ascending
    a = smallest[:, lo].astype(jnp.float64)
    b = smallest[:, hi].astype(jnp.float64)
    # numpy's _lerp: interpolate from the nearer end for accuracy.
    quantile = a + (b - a) * gamma if gamma < 0.5 else b - (b - a) * (1.0 - gamma)
    var_ready = n >= spec.var_window
    var = jnp.where(var_ready, -quantile, 0.0)

    return RiskMetrics(
        equity=state.equity,
        total_return=total_return,
        mean_return=jnp.where(n >= 1, state.mean, 0.0),
        std_return=std,
        sharpe=sharpe,
        max_drawdown=state.max_drawdown,
        var=var,
        sharpe_ready=sharpe_ready,
        var_ready=var_ready,
    )


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
