"""The background pool (tier 3): ``count`` anonymous traders with no rows.

A statistical order generator per symbol with aggregate accounting; see
``systems.background`` for the model. Fields left ``null`` take the value of the
``regime`` preset (calm, normal, volatile, crisis).
"""

from __future__ import annotations

import dataclasses

from components.indicators import IndicatorSpec
from components.schema import setting
from systems.background import REGIMES, make_background  # noqa: F401  (the builder calls it)

KIND = "background"
TIER = 3


@dataclasses.dataclass
class Config:
    count: int = setting(0, doc="Members of the pool (traders it stands for).")
    regime: str = setting("normal", doc="Preset for the fields left null: calm, normal, volatile or crisis.")
    activity: float | None = setting(None, hi=1.0, doc=(
        "Probability that a member sends an order in a tick (regime: 0.005-0.04)."))
    aggressive: float | None = setting(None, hi=1.0, doc=(
        "Fraction of orders priced through the mid (they take liquidity)."))
    offset_mean: float | None = setting(None, hi=0.5, doc=(
        "Mean distance of an order's price from the mid, as a fraction (exponential)."))
    offset_cap: float = setting(0.02, hi=0.5, doc="Largest distance from the mid (fraction).")
    size_median: float = setting(20.0, lo=1.0, doc="Median order size in shares (log-normal).")
    size_sigma: float | None = setting(None, hi=3.0, doc="Standard deviation of log size.")
    size_cap: int = setting(1000, lo=1, doc="Largest order, shares.")
    vol_feedback: float = setting(1.0, hi=4.0, doc=(
        "Activity x (ATR short / ATR long) ** this, clipped to ``boost`` (0 = off)."))
    vol_periods: list[int] = setting([5, 100], lo=1, doc="Short and long ATR periods of the boost.")
    boost: list[float] = setting([0.5, 3.0], hi=100.0, doc="Bounds of the volatility multiplier of activity.")
    gain: float = setting(5.0, doc=(
        "Steepness of the side bias in the mood: P(buy) = 0.5 + 0.5 max_bias tanh(gain mood) (1 - 2 "
        "contrarian)."))
    max_bias: float = setting(0.5, hi=1.0, doc="Largest side bias: P(buy) stays within 0.5 +- max_bias / 2.")
    contrarian: float = setting(0.2, hi=1.0, doc="Fraction of the pool leaning against the mood.")
    half_life: float = setting(50.0, lo=0.1, doc=(
        "Ticks in which the pool's mood halves on its way back to neutral."))
    lifetime: int = setting(5, lo=1, hi=10000, doc=(
        "Ticks a resting pool order lives before the pool cancels it."))
    cash: float = setting(100_000.0, doc=(
        "Cash per member, currency (the pool's opening cash is count times this)."))
    shares: int = setting(50, doc="Shares per member, spread evenly over the symbols.")
    max_drift: float = setting(0.5, hi=1.0, doc=(
        "The run stops if the pool's cash or a position leaves [1 - this, 1 + this] x its opening "
        'value.'))


def check(cfg: Config, n_symbols: int) -> None:
    if cfg.regime not in REGIMES:
        raise ValueError(f"population.background.regime: unknown regime '{cfg.regime}'; "
                         f"allowed: {', '.join(REGIMES)}")
    if cfg.vol_feedback > 0 and cfg.vol_periods[0] >= cfg.vol_periods[1]:
        raise ValueError(f"population.background.vol_periods: the short period must be below the long one, "
                         f"got {cfg.vol_periods}")
    if cfg.offset_mean is not None and cfg.offset_mean > cfg.offset_cap:
        raise ValueError(f"population.background.offset_mean: must not exceed offset_cap ({cfg.offset_cap}), "
                         f"got {cfg.offset_mean}")


def indicators(cfg: Config) -> IndicatorSpec:
    """The two ATRs of the volatility boost (none when it is off)."""
    return IndicatorSpec(atr=tuple(sorted(set(cfg.vol_periods)))) if cfg.vol_feedback > 0 else IndicatorSpec()
