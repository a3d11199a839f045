"""Per-agent risk statistics: the static spec, the running state and the on-demand metrics.

One row per agent, the agent axis first. The state is fed one mark-to-market equity value
per agent per tick (f64[N] units, see ``systems.measure.equity``) by
``systems.risk.update_risk``; ``systems.risk.risk_metrics`` turns it into metrics.

Memory is bounded and linear in N: seven f64/i32 columns plus the VaR ring buffer
``f32[N, W]``. With the default ``W = 50`` that is ``6*8 + 4 + 50*4 = 252`` bytes per agent,
about 252 MB at a million agents (the window is 200 MB of it, which is why it is float32).
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
    """

    equity: jax.Array  # f64[N] units, last equity fed in
    equity0: jax.Array  # f64[N] units, equity at init (base of total_return)
    peak: jax.Array  # f64[N] units, running maximum of equity (init included)
    max_drawdown: jax.Array  # f64[N] fraction of peak, running max of (peak - e) / peak
    mean: jax.Array  # f64[N] Welford running mean of valid returns
    m2: jax.Array  # f64[N] Welford running sum of squared deviations of valid returns
    count: jax.Array  # i32[N] valid returns seen
    window: jax.Array  # f32[N, W] ring buffer of the last W valid returns (0 before written)


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
