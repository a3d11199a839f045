"""The background pool (tier 3): ``count`` anonymous traders with no rows.

A statistical order generator per symbol with aggregate accounting; see
``systems.background`` for the model. Fields left ``null`` take the value of the
``regime`` preset (calm, normal, volatile, crisis).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from components.indicators import IndicatorSpec
from systems.background import REGIMES, make_background  # noqa: F401  (the builder calls it)

KIND = "background"
TIER = 3


@dataclasses.dataclass
class Config:
    count: int = 0
    """Members of the pool (traders it stands for)."""
    regime: str = "normal"
    """Preset for the fields left null: calm, normal, volatile or crisis."""
    activity: Optional[float] = None
    """Probability that a member sends an order in a tick (regime: 0.005-0.04)."""
    aggressive: Optional[float] = None
    """Fraction of orders priced through the mid (they take liquidity)."""
    offset_mean: Optional[float] = None
    """Mean distance of an order's price from the mid, as a fraction (exponential)."""
    offset_cap: float = 0.02
    """Largest distance from the mid (fraction)."""
    size_median: float = 20.0
    """Median order size in shares (log-normal)."""
    size_sigma: Optional[float] = None
    """Standard deviation of log size."""
    size_cap: int = 1000
    """Largest order, shares."""
    vol_feedback: float = 1.0
    """Activity x (ATR short / ATR long) ** this, clipped to ``boost`` (0 = off)."""
    vol_periods: list[int] = dataclasses.field(default_factory=lambda: [5, 100])
    """Short and long ATR periods of the boost."""
    boost: list[float] = dataclasses.field(default_factory=lambda: [0.5, 3.0])
    """Bounds of the volatility multiplier of activity."""
    gain: float = 5.0
    """Steepness of the side bias in the mood: P(buy) = 0.5 + 0.5 max_bias tanh(gain mood) (1 - 2 contrarian)."""
    max_bias: float = 0.5
    """Largest side bias: P(buy) stays within 0.5 +- max_bias / 2."""
    contrarian: float = 0.2
    """Fraction of the pool leaning against the mood."""
    half_life: float = 50.0
    """Ticks in which the pool's mood halves on its way back to neutral."""
    lifetime: int = 5
    """Ticks a resting pool order lives before the pool cancels it."""
    cash: float = 100_000.0
    """Cash per member, currency (the pool's opening cash is count times this)."""
    shares: int = 50
    """Shares per member, spread evenly over the symbols."""
    max_drift: float = 0.5
    """The run stops if the pool's cash or a position leaves [1 - this, 1 + this] x its opening value."""


BOUNDS = {
    "activity": (0.0, 1.0),
    "aggressive": (0.0, 1.0),
    "offset_mean": (0.0, 0.5),
    "offset_cap": (0.0, 0.5),
    "size_median": (1.0, None),
    "size_sigma": (0.0, 3.0),
    "size_cap": (1, None),
    "vol_feedback": (0.0, 4.0),
    "vol_periods": (1, None),
    "boost": (0.0, 100.0),
    "max_bias": (0.0, 1.0),
    "contrarian": (0.0, 1.0),
    "half_life": (0.1, None),
    "lifetime": (1, 10_000),
    "max_drift": (0.0, 1.0),
}


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
