"""Trend followers: a fast/slow simple-moving-average crossover on their symbol.

Each agent compares SMA(``fast``) with SMA(``slow``) of its symbol after the last bar.
While fast > slow (after a golden cross) its target is a full ``max_position``; while
fast < slow (after a death cross) its target is flat. It trades toward the target in
slices of at most ``size`` shares per tick, so the rule needs no memory of the cross
itself. Equal averages, or averages not ready yet, leave it idle. Orders are
immediate-or-cancel, ``collar`` through the reference (see ``_signal``).
"""

from __future__ import annotations

import dataclasses

import jax

from components.indicators import IndicatorSpec
from components.schema import setting
from systems.strategies._signal import Seen, TradeConfig, check_fast_slow, full_or_flat, period_range, signal_kind, vote

KIND = "trend_follower"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):
    fast: list[int] = setting([5, 10], lo=1, doc="Range of fast SMA periods in bars (each agent draws one).")
    slow: list[int] = setting([20, 30], lo=2, doc=(
        "Range of slow SMA periods in bars; every one above every fast period."))


def check(cfg: Config, n_symbols: int) -> None:
    """Every fast period below every slow one."""
    check_fast_slow(cfg.fast, cfg.slow, f"population.{KIND}")


def indicators(cfg: Config) -> IndicatorSpec:
    """SMA of every fast and slow period an agent may draw."""
    return IndicatorSpec(sma=period_range(cfg.fast) + period_range(cfg.slow))


def signal(seen: Seen, p: Params) -> jax.Array:
    """Buy (aim at full) while SMA(fast) > SMA(slow), sell (aim at flat) while below."""
    fast, slow = seen.sma(p.fast), seen.sma(p.slow)
    return vote(fast.value > slow.value, fast.value < slow.value, fast.ready & slow.ready)


Params, make_params, initial_holdings, decide = signal_kind(Config, signal, full_or_flat, check)
