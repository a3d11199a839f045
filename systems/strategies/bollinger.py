"""Bollinger reversion traders: buy at the lower band, sell at the upper band.

Each agent reads Bollinger(``period``, ``k``) of its symbol after the last bar. When the
bar's close (the last trade price) is at or below the lower band (%B <= 0) it buys
``size`` shares (up to its ``max_position``); at or above the upper band (%B >= 1) it
sells ``size`` (down to flat: long only). Inside the bands, on a flat window (zero
width) or before the bands are ready it does nothing. Orders are immediate-or-cancel,
``collar`` through the reference (see ``_signal``).
"""

from __future__ import annotations

import dataclasses

import jax

from components.indicators import IndicatorSpec
from components.schema import setting
from systems.strategies._signal import Seen, TradeConfig, by_size, period_range, signal_kind, vote

KIND = "bollinger_reversion"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):
    period: list[int] = setting([20, 20], lo=2, doc=(
        "Range of band periods in bars (each agent draws one; every one is computed)."))
    k: float = setting(2.0, hi=10.0, doc=(
        "Band half-width in population standard deviations (one value: bands are per k)."))


def indicators(cfg: Config) -> IndicatorSpec:
    """Bollinger bands of every period an agent may draw, at the one ``k``."""
    return IndicatorSpec(bollinger=tuple((p, float(cfg.k)) for p in period_range(cfg.period)))


def signal(seen: Seen, p: Params) -> jax.Array:
    """Buy at or below the lower band (%B <= 0), sell at or above the upper (%B >= 1)."""
    # %B compares the bar's close with the bands it was computed with; a flat window
    # reads 0.5, inside both bands.
    bands = seen.bollinger(p.period, p.k)
    return vote(bands.percent_b <= 0.0, bands.percent_b >= 1.0, bands.ready)


Params, make_params, initial_holdings, decide = signal_kind(Config, signal, by_size)
