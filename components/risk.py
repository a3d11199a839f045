"""Per-agent risk statistics: the static spec, the running state and the on-demand metrics.

One row per agent, the agent axis first. The state is fed one mark-to-market equity value
per agent per tick (f64[N] units, see ``systems.measure.equity``) by
``systems.risk.update_risk``; ``systems.risk.risk_metrics`` turns it into metrics.

The same update also folds in the symbols' last prices (i64[S] units): the running moments
of the symbol returns (for their correlation) and, per agent, the co-moments of the agent's
return with the equal-weight market index (for beta).

Memory is bounded, linear in N and quadratic in S, and does not grow with ticks: ten f64/i32
columns plus the VaR ring buffer ``f32[N, W]`` per agent, and ``S*S + 2*S + 1`` shared values.
With the default ``W = 50`` that is ``9*8 + 4 + 50*4 = 276`` bytes per agent, about 276 MB at
a million agents (the window is 200 MB of it, which is why it is float32).
"""

from __future__ import annotations

import dataclasses

import jax
from flax import struct


@dataclasses.dataclass(frozen=True)
class RiskSpec:
    """Static risk settings (hashable; ``var_window`` fixes a shape).

    * ``var_window``: W, the number of most recent valid returns the historical VaR uses.
    * ``var_confidence``: c, VaR is the loss not exceeded with probability c.
    * ``periods_per_year``: ticks per year used to annualise the Sharpe ratio
      (``sqrt(periods_per_year)`` factor); the default 1 gives a per-tick Sharpe.
    """

    var_window: int = 50
    var_confidence: float = 0.95
    periods_per_year: float = 1.0

    def __post_init__(self) -> None:
        w, c, p = self.var_window, self.var_confidence, self.periods_per_year
        if isinstance(w, bool) or not isinstance(w, int) or w < 2:
            raise ValueError(f"risk.var_window must be an integer >= 2, got {w!r}")
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0.0 < c < 1.0:
            raise ValueError(f"risk.var_confidence must be a number in (0, 1), got {c!r}")
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < p < float("inf"):
            raise ValueError(f"risk.periods_per_year must be a finite number > 0, got {p!r}")


@struct.dataclass
class RiskState:
    """Running risk statistics per agent.

    Returns are simple per-tick returns ``e_t / e_{t-1} - 1``; a tick whose previous
    equity is <= 0 (or whose return is not finite) has no valid return and leaves the
    return statistics and the window untouched. ``count`` counts valid returns only.
    The ring buffer holds each agent's last ``W`` valid returns: the next one goes to
    column ``count % W`` (a per-row position, so agents with skipped ticks stay dense).

    The equal-weight market index return of a tick is the mean over all S symbols of
    ``r_s`` (a symbol whose previous last price is <= 0 counts as a 0 return). Beta pairs
    each agent's valid returns with the index return of the same ticks, so the index
    moments are kept per agent (they differ only for agents that skipped ticks). Without
    prices (``init_risk`` given no ``last0``) S is 0 and these fields stay empty / zero.
    """

    equity: jax.Array  # f64[N] units, last equity fed in
    equity0: jax.Array  # f64[N] units, equity at init (base of total_return)
    peak: jax.Array  # f64[N] units, running maximum of equity (init included)
    max_drawdown: jax.Array  # f64[N] fraction of peak, running max of (peak - e) / peak
    mean: jax.Array  # f64[N] Welford running mean of valid returns
    m2: jax.Array  # f64[N] Welford running sum of squared deviations of valid returns
    count: jax.Array  # i32[N] valid returns seen
    window: jax.Array  # f32[N, W] ring buffer of the last W valid returns (0 before written)
    # Beta: the index return r_m over the same ticks as each agent's valid returns (Welford).
    index_mean: jax.Array  # f64[N] running mean of r_m over the agent's valid ticks
    index_m2: jax.Array  # f64[N] running sum of squared deviations of r_m, same ticks
    comoment: jax.Array  # f64[N] running sum of (r_a - mean_a)(r_m - mean_m), same ticks
    # Symbol returns r_s = last_t / last_{t-1} - 1 (0 where last_{t-1} <= 0), shared.
    prev_last: jax.Array  # i64[S] units, last prices fed in last (the base of the next return)
    symbol_count: jax.Array  # i32[] ticks of symbol returns seen
    symbol_mean: jax.Array  # f64[S] running mean of r_s
    symbol_comoment: jax.Array  # f64[S, S] running sum of (r_i - mean_i)(r_j - mean_j)


@struct.dataclass
class RiskMetrics:
    """Risk metrics per agent, computed on demand from a RiskState. All f64[N] unless noted.

    Fractions, not percent. A metric whose flag is False is reported as 0.
    """

    equity: jax.Array  # f64[N] units, last equity
    total_return: jax.Array  # f64[N] e / e0 - 1 (0 where e0 <= 0)
    mean_return: jax.Array  # f64[N] mean per-tick return (0 before any valid return)
    std_return: jax.Array  # f64[N] sample std (ddof=1) of per-tick returns (0 below 2 returns)
    sharpe: jax.Array  # f64[N] mean / std * sqrt(periods_per_year) (0 unless sharpe_ready)
    max_drawdown: jax.Array  # f64[N] max fractional drop from the running peak (0 where peak <= 0)
    var: jax.Array  # f64[N] historical VaR as a positive loss fraction (0 unless var_ready)
    sharpe_ready: jax.Array  # bool[N] at least 2 valid returns and std > 0
    var_ready: jax.Array  # bool[N] at least W valid returns (the window is full)


@struct.dataclass
class Exposure:
    """Market value of each agent's positions, in currency (floats). Shorts are negative.

    ``by_sector`` is the net value per sector (longs minus shorts), ``gross_by_sector`` the
    sum of absolute values per sector; ``gross`` and ``net`` sum over all symbols.
    """

    by_symbol: jax.Array  # f64[N, S] currency, position * price (signed)
    by_sector: jax.Array  # f64[N, K] currency, net: sum of by_symbol over the sector's symbols
    gross_by_sector: jax.Array  # f64[N, K] currency, sum of |by_symbol| over the sector
    gross: jax.Array  # f64[N] currency, sum over symbols of |by_symbol|
    net: jax.Array  # f64[N] currency, sum over symbols of by_symbol
