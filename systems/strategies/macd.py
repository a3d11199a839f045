"""MACD crossover traders: the MACD line against its signal line on their symbol.

Each agent reads MACD(``fast``, ``slow``, ``signal``) of its symbol after the last bar.
While the line is above the signal its target is a full ``max_position``; while below,
flat. It trades toward the target in slices of at most ``size`` shares per tick (no
memory of the cross needed). Equal lines, or a signal not ready yet, leave it idle.
Orders are immediate-or-cancel, ``collar`` through the reference (see ``_signal``).
"""

from __future__ import annotations

import dataclasses
import itertools

import jax

from components.indicators import IndicatorSpec
from components.schema import setting
from systems.strategies._signal import Seen, TradeConfig, check_fast_slow, full_or_flat, period_range, signal_kind, vote

KIND = "macd_cross"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):
    fast: list[int] = setting([12, 12], lo=1, doc="Range of fast EMA periods in bars (each agent draws one).")
    slow: list[int] = setting([26, 26], lo=2, doc=(
        "Range of slow EMA periods in bars; every one above every fast period."))
    signal: list[int] = setting([9, 9], lo=1, doc=(
        "Range of signal EMA periods in bars. Every (fast, slow, signal) is computed."))


def check(cfg: Config, n_symbols: int) -> None:
    """Every fast period below every slow one."""
    check_fast_slow(cfg.fast, cfg.slow, f"population.{KIND}")


def indicators(cfg: Config) -> IndicatorSpec:
    """MACD of every (fast, slow, signal) an agent may draw."""
    sets = itertools.product(period_range(cfg.fast), period_range(cfg.slow), period_range(cfg.signal))
    return IndicatorSpec(macd=tuple(sets))


def signal(seen: Seen, p: Params) -> jax.Array:
    """Buy (aim at full) while the MACD line is above its signal line, sell (aim at flat)
    while below."""
    macd = seen.macd(p.fast, p.slow, p.signal)
    return vote(macd.line > macd.signal, macd.line < macd.signal, macd.ready)


Params, make_params, initial_holdings, decide = signal_kind(Config, signal, full_or_flat, check)
