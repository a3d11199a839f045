"""Momentum traders: Wilder's RSI thresholds on their symbol.

Each agent reads RSI(``period``) of its symbol after the last bar. Below ``oversold`` it
buys ``size`` shares (up to its ``max_position``); above ``overbought`` it sells ``size``
(down to flat: long only). In between, or before the RSI is ready, it does nothing.
Orders are immediate-or-cancel, ``collar`` through the reference (see ``_signal``).
"""

from __future__ import annotations

import dataclasses

import jax

from components.indicators import IndicatorSpec
from components.schema import setting
from systems.strategies._signal import Seen, TradeConfig, by_size, period_range, signal_kind, vote

KIND = "momentum"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):
    period: list[int] = setting([14, 14], lo=1, doc=(
        "Range of RSI periods in bars (each agent draws one; every one is computed)."))
    oversold: list[float] = setting([25.0, 35.0], hi=50.0, doc=(
        "Range of the RSI level below which an agent buys."))
    overbought: list[float] = setting([65.0, 75.0], lo=50.0, hi=100.0, doc=(
        "Range of the RSI level above which an agent sells."))


def indicators(cfg: Config) -> IndicatorSpec:
    """RSI of every period an agent may draw."""
    return IndicatorSpec(rsi=period_range(cfg.period))


def signal(seen: Seen, p: Params) -> jax.Array:
    """Buy below ``oversold``, sell above ``overbought``, once the RSI is ready."""
    rsi = seen.rsi(p.period)
    return vote(rsi.value < p.oversold, rsi.value > p.overbought, rsi.ready)


Params, make_params, initial_holdings, decide = signal_kind(Config, signal, by_size)
