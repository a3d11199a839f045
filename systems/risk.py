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

Portfolio risk (fed the symbols' last prices i64[S] units each tick, next to the equity):

* Symbol return ``r_s = last_t / last_{t-1} - 1`` (0 where ``last_{t-1} <= 0``); the
  equal-weight index return ``r_m = mean_s r_s``. Running (Welford) moments only: no
  per-tick history is kept, so memory does not grow with ticks.
* ``beta``: ``cov(r_a, r_m) / var(r_m)`` over the agent's valid-return ticks (the same
  ticks the Sharpe uses). NaN when ``var(r_m)`` over those ticks is 0, which includes
  fewer than 2 valid returns.
* ``symbol_correlation``: Pearson correlation of the symbol returns, f64[S, S]. The
  diagonal is 1; an off-diagonal entry is NaN when either symbol's returns are constant
  (zero variance, e.g. it never traded, or fewer than 2 ticks).
* ``index_stats``: mean and sample std (ddof=1) of the per-tick index return, derived
  from the symbol moments (``var(r_m) = sum(cov) / S^2``); NaN below 2 ticks.
* ``exposure``: market value of positions per symbol and sector (currency, shorts < 0).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from components.money import SCALE
from components.risk import Exposure, RiskMetrics, RiskSpec, RiskState


def init_risk(spec: RiskSpec, equity0: jax.Array, last0: jax.Array | None = None) -> RiskState:
    """Fresh risk state for agents whose equity is ``equity0`` (f64[N] units) at the start.

    ``last0`` (i64[S] units): the symbols' opening last prices, the base of the first
    symbol and index returns. Without it S = 0 and no portfolio statistics are kept.
    """
    e0 = jnp.asarray(equity0, jnp.float64)
    if e0.ndim != 1:
        raise ValueError(f"equity0 must be one value per agent, shape (N,), got {e0.shape}")
    last = jnp.zeros(0, jnp.int64) if last0 is None else jnp.asarray(last0, jnp.int64)
    if last.ndim != 1:
        raise ValueError(f"last0 must be one price per symbol, shape (S,), got {last.shape}")
    n, s = e0.shape[0], last.shape[0]
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
        index_mean=zeros,
        index_m2=zeros,
        comoment=zeros,
        prev_last=last,
        symbol_count=jnp.zeros((), jnp.int32),
        symbol_mean=jnp.zeros(s, jnp.float64),
        symbol_comoment=jnp.zeros((s, s), jnp.float64),
    )


def symbol_returns(prev_last: jax.Array, last: jax.Array) -> jax.Array:
    """Simple returns ``last / prev_last - 1`` per symbol, 0 where ``prev_last <= 0``. f64[S]."""
    ok = prev_last > 0
    return jnp.where(ok, last / jnp.where(ok, prev_last, 1).astype(jnp.float64) - 1.0, 0.0)


@functools.partial(jax.jit, static_argnames=("spec",))
def update_risk(
    spec: RiskSpec, state: RiskState, equity: jax.Array, last: jax.Array | None = None
) -> RiskState:
    """Fold one tick's equity (f64[N] units) and last prices (i64[S] units) into the
    running statistics. O(N + S^2).

    Without ``last`` the portfolio statistics (symbol moments, index co-moments) are left
    as they were. Pure: returns a new state. Called inside a jitted tick that donates the
    world state, the window write happens in place; called alone, as here, XLA copies it.
    """
    if last is not None and jnp.shape(last) != state.prev_last.shape:
        raise ValueError(
            f"update_risk: last has shape {jnp.shape(last)} but the risk state was initialised "
            f"for {state.prev_last.shape} symbols (pass last0 to init_risk)"
        )
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

    new = state.replace(
        equity=e, peak=peak, max_drawdown=max_drawdown, mean=mean, m2=m2, count=n, window=window
    )
    if last is None:
        return new
    return _update_portfolio(new, jnp.asarray(last, jnp.int64), valid, delta, n)


def _update_portfolio(
    state: RiskState, last: jax.Array, valid: jax.Array, delta: jax.Array, n: jax.Array
) -> RiskState:
    """Symbol moments and, per agent, the co-moments of its return with the index.

    ``valid``, ``delta`` (``r_a - old mean``) and ``n`` (new count) come from the agent
    return update, so beta uses exactly the ticks the Sharpe uses.
    """
    r = symbol_returns(state.prev_last, last)  # f64[S]
    s = r.shape[0]
    r_m = r.sum() / max(s, 1)  # equal-weight index return

    # Per agent, Welford co-moment: C_n = C_{n-1} + (a_n - abar_{n-1}) (m_n - mbar_n).
    dm = r_m - state.index_mean
    index_mean = state.index_mean + jnp.where(valid, dm / jnp.maximum(n, 1), 0.0)
    dev_m = r_m - index_mean
    index_m2 = state.index_m2 + jnp.where(valid, dm * dev_m, 0.0)
    comoment = state.comoment + jnp.where(valid, delta * dev_m, 0.0)

    # Shared, every tick: C += (k-1)/k d d^T (exactly symmetric, unlike d (r - mean_k)^T).
    k = state.symbol_count + 1
    kf = k.astype(jnp.float64)  # int32 / int32 would divide in float32
    d = r - state.symbol_mean
    symbol_mean = state.symbol_mean + d / kf
    symbol_comoment = state.symbol_comoment + ((kf - 1.0) / kf) * jnp.outer(d, d)

    return state.replace(
        index_mean=index_mean,
        index_m2=index_m2,
        comoment=comoment,
        prev_last=last,
        symbol_count=k,
        symbol_mean=symbol_mean,
        symbol_comoment=symbol_comoment,
    )


@jax.jit
def beta(state: RiskState) -> jax.Array:
    """Beta of each agent's per-tick return to the equal-weight index. f64[N].

    ``cov(r_a, r_m) / var(r_m)`` over the agent's valid-return ticks; NaN where the index
    variance over those ticks is 0 (fewer than 2 valid returns, or a flat index).
    """
    ok = state.index_m2 > 0
    return jnp.where(ok, state.comoment / jnp.where(ok, state.index_m2, 1.0), jnp.nan)


@jax.jit
def symbol_correlation(state: RiskState) -> jax.Array:
    """Pearson correlation of the symbols' per-tick returns. f64[S, S].

    Diagonal 1; off-diagonal NaN where either symbol's return variance is 0 (constant
    returns, or fewer than 2 ticks). Clipped to [-1, 1] against rounding.
    """
    c = state.symbol_comoment
    var = jnp.diagonal(c)
    ok = var > 0
    sd = jnp.sqrt(jnp.where(ok, var, 1.0))
    corr = jnp.clip(c / (sd[:, None] * sd[None, :]), -1.0, 1.0)
    corr = jnp.where(ok[:, None] & ok[None, :], corr, jnp.nan)
    eye = jnp.eye(c.shape[0], dtype=bool)
    return jnp.where(eye, 1.0, corr)


@jax.jit
def index_stats(state: RiskState) -> tuple[jax.Array, jax.Array]:
    """Mean and sample std (ddof=1) of the per-tick equal-weight index return. f64[] each.

    Derived from the symbol moments: the index is the mean of the symbol returns, so its
    mean is the mean of their means and its variance ``sum(cov) / S^2``. NaN below 1
    (mean) or 2 (std) ticks.
    """
    k = state.symbol_count
    s = max(state.symbol_mean.shape[0], 1)
    mean = jnp.where(k >= 1, state.symbol_mean.sum() / s, jnp.nan)
    var = state.symbol_comoment.sum() / (s * s) / jnp.maximum(k - 1, 1)
    std = jnp.where(k >= 2, jnp.sqrt(jnp.maximum(var, 0.0)), jnp.nan)
    return mean, std


def exposure(
    position: jax.Array, price: jax.Array, sector_of: Sequence[int] | jax.Array, n_sectors: int
) -> Exposure:
    """Market value of every agent's positions per symbol and per sector, in currency.

    ``position`` i64[N, S] shares (shorts negative), ``price`` [S] units (e.g. the last
    price), ``sector_of`` [S] sector index of each symbol in ``[0, n_sectors)``. Values are
    ``position * price / SCALE``, signed; see ``Exposure`` for the aggregates.
    """
    pos = jnp.asarray(position)
    px = jnp.asarray(price)
    sec = np.asarray(sector_of, np.int64)
    if pos.ndim != 2 or px.shape != (pos.shape[1],) or sec.shape != px.shape:
        raise ValueError(
            f"exposure: need position [N, S], price [S], sector_of [S]; got {pos.shape}, "
            f"{px.shape}, {sec.shape}"
        )
    if sec.size and (sec.min() < 0 or sec.max() >= n_sectors):
        raise ValueError(f"exposure: sector_of must lie in [0, {n_sectors}), got {sec.tolist()}")
    onehot = jnp.asarray(sec[:, None] == np.arange(n_sectors)[None, :], jnp.float64)  # [S, K]
    by_symbol = pos.astype(jnp.float64) * px.astype(jnp.float64) / SCALE
    return Exposure(
        by_symbol=by_symbol,
        by_sector=by_symbol @ onehot,
        gross_by_sector=jnp.abs(by_symbol) @ onehot,
        gross=jnp.abs(by_symbol).sum(axis=1),
        net=by_symbol.sum(axis=1),
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


@functools.partial(jax.jit, static_argnames=("spec", "n_kinds"))
def kind_risk(spec: RiskSpec, risk: RiskState, kind_of: jax.Array, n_kinds: int) -> dict[str, jax.Array]:
    """Risk statistics per strategy kind, each f64[K]: mean Sharpe and mean VaR over the
    agents where they are ready (and those counts), mean and worst maximum drawdown.

    ``kind_of`` i32[N] is each agent's kind. One small device program: only [K] values
    cross to the host, so a refresh stays cheap at 100k+ agents.
    """
    m = risk_metrics(spec, risk)
    seg = functools.partial(jax.ops.segment_sum, segment_ids=kind_of, num_segments=n_kinds)
    agents = jnp.maximum(seg(jnp.ones_like(m.sharpe)), 1.0)
    sharpe_n = seg(m.sharpe_ready.astype(jnp.float64))
    var_n = seg(m.var_ready.astype(jnp.float64))
    return {
        "sharpe": seg(jnp.where(m.sharpe_ready, m.sharpe, 0.0)) / jnp.maximum(sharpe_n, 1.0),
        "sharpe_ready": sharpe_n,
        "drawdown": seg(m.max_drawdown) / agents,
        "drawdown_worst": jax.ops.segment_max(m.max_drawdown, kind_of, num_segments=n_kinds),
        "var": seg(jnp.where(m.var_ready, m.var, 0.0)) / jnp.maximum(var_n, 1.0),
        "var_ready": var_n,
    }
