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
    check_fast_slow,
    column,
    draw_int,
    make_trade,
    period_range,
    toward,
    trade_holdings,
    trade_rows,
)

KIND = "macd_cross"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):
    fast: list[int] = dataclasses.field(default_factory=lambda: [12, 12])
    """Range of fast EMA periods in bars (each agent draws one)."""
    slow: list[int] = dataclasses.field(default_factory=lambda: [26, 26])
    """Range of slow EMA periods in bars; every one above every fast period."""
    signal: list[int] = dataclasses.field(default_factory=lambda: [9, 9])
    """Range of signal EMA periods in bars. Every (fast, slow, signal) is computed."""


BOUNDS = {  # allowed values of each Config field (default: >= 0)
    **TRADE_BOUNDS,
    "fast": (1, None),
    "slow": (2, None),
    "signal": (1, None),
}


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    fast: jax.Array  # i32[M] fast EMA period in bars
    slow: jax.Array  # i32[M] slow EMA period in bars
    signal: jax.Array  # i32[M] signal EMA period in bars


def check(cfg: Config, n_symbols: int) -> None:
    """Every fast period below every slow one."""
    check_fast_slow(cfg.fast, cfg.slow, f"population.{KIND}")


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's limits and periods uniformly from the ranges."""
    check(cfg, n_symbols)
    return Params(
        trade=make_trade(cfg, count, rng, n_symbols),
        fast=jnp.asarray(draw_int(rng, cfg.fast, count), jnp.int32),
        slow=jnp.asarray(draw_int(rng, cfg.slow, count), jnp.int32),
        signal=jnp.asarray(draw_int(rng, cfg.signal, count), jnp.int32),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return trade_holdings(cfg, params.trade, n_symbols)


def indicators(cfg: Config) -> IndicatorSpec:
    """MACD of every (fast, slow, signal) an agent may draw."""
    sets = itertools.product(period_range(cfg.fast), period_range(cfg.slow), period_range(cfg.signal))
    return IndicatorSpec(macd=tuple(sets))


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
    macd = frame.indicators.macd
    sym = p.trade.symbol
    col = column(static.indicators.macd, jnp.stack([p.fast, p.slow, p.signal], axis=1))
    line, signal = at(macd.line, sym, col), at(macd.signal, sym, col)
    ready = at(macd.ready, sym, col)
    rows = kind.start + jnp.arange(kind.count)
    position = state.wallet.position[rows, sym]
    target = jnp.where(line > signal, p.trade.max_position, jnp.where(line < signal, 0, position))
    return trade_rows(static, kind, world, p.trade, state, frame, jnp.where(ready, toward(target, position), 0))
