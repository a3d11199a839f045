"""Momentum traders: Wilder's RSI thresholds on their symbol.

Each agent reads RSI(``period``) of its symbol after the last bar. Below ``oversold`` it
buys ``size`` shares (up to its ``max_position``); above ``overbought`` it sells ``size``
(down to flat: long only). In between, or before the RSI is ready, it does nothing.
Orders are immediate-or-cancel, ``collar`` through the reference (see ``_signal``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.indicators import IndicatorSpec
from components.orders import OrderBatch
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._signal import (
    TRADE_BOUNDS,
    Trade,
    TradeConfig,
    at,
    column,
    draw_int,
    make_trade,
    period_range,
    trade_holdings,
    trade_rows,
)

KIND = "momentum"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):
    period: list[int] = dataclasses.field(default_factory=lambda: [14, 14])
    """Range of RSI periods in bars (each agent draws one; every one is computed)."""
    oversold: list[float] = dataclasses.field(default_factory=lambda: [25.0, 35.0])
    """Range of the RSI level below which an agent buys."""
    overbought: list[float] = dataclasses.field(default_factory=lambda: [65.0, 75.0])
    """Range of the RSI level above which an agent sells."""


BOUNDS = {  # allowed values of each Config field (default: >= 0)
    **TRADE_BOUNDS,
    "period": (1, None),
    "oversold": (0.0, 50.0),
    "overbought": (50.0, 100.0),
}


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    period: jax.Array  # i32[M] RSI period in bars
    oversold: jax.Array  # f64[M] RSI level, buy below
    overbought: jax.Array  # f64[M] RSI level, sell above


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's limits, period and thresholds uniformly from the ranges."""
    return Params(
        trade=make_trade(cfg, count, rng, n_symbols),
        period=jnp.asarray(draw_int(rng, cfg.period, count), jnp.int32),
        oversold=jnp.asarray(rng.uniform(*cfg.oversold, count), jnp.float64),
        overbought=jnp.asarray(rng.uniform(*cfg.overbought, count), jnp.float64),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return trade_holdings(cfg, params.trade, n_symbols)


def indicators(cfg: Config) -> IndicatorSpec:
    """RSI of every period an agent may draw."""
    return IndicatorSpec(rsi=period_range(cfg.period))


def decide(
    static: WorldStatic,
    kind: KindStatic,
    world: WorldParams,
    p: Params,
    state: WorldState,
    frame: dict,
    key: jax.Array,
) -> OrderBatch:
    """Returns 2 rows per agent (cancel, IOC), ``count * 2`` rows."""
    del key  # deterministic given the market
    rsi = frame.indicators.rsi
    sym = p.trade.symbol
    col = column(static.indicators.rsi, p.period)
    value, ready = at(rsi.value, sym, col), at(rsi.ready, sym, col)
    size = p.trade.size
    want = jnp.where(value < p.oversold, size, jnp.where(value > p.overbought, -size, 0))
    return trade_rows(static, kind, world, p.trade, state, frame, jnp.where(ready, want, 0))
