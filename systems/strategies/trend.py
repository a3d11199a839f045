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

KIND = "trend_follower"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):
    fast: list[int] = dataclasses.field(default_factory=lambda: [5, 10])
    """Range of fast SMA periods in bars (each agent draws one)."""
    slow: list[int] = dataclasses.field(default_factory=lambda: [20, 30])
    """Range of slow SMA periods in bars; every one above every fast period."""


BOUNDS = {  # allowed values of each Config field (default: >= 0)
    **TRADE_BOUNDS,
    "fast": (1, None),
    "slow": (2, None),
}


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    fast: jax.Array  # i32[M] fast SMA period in bars
    slow: jax.Array  # i32[M] slow SMA period in bars


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
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return trade_holdings(cfg, params.trade, n_symbols)


def indicators(cfg: Config) -> IndicatorSpec:
    """SMA of every fast and slow period an agent may draw."""
    return IndicatorSpec(sma=period_range(cfg.fast) + period_range(cfg.slow))


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
    sma = frame.indicators.sma
    sym = p.trade.symbol
    fast_col = column(static.indicators.sma, p.fast)
    slow_col = column(static.indicators.sma, p.slow)
    fast, slow = at(sma.value, sym, fast_col), at(sma.value, sym, slow_col)
    ready = at(sma.ready, sym, fast_col) & at(sma.ready, sym, slow_col)
    rows = kind.start + jnp.arange(kind.count)
    position = state.wallet.position[rows, sym]
    target = jnp.where(fast > slow, p.trade.max_position, jnp.where(fast < slow, 0, position))
    return trade_rows(static, kind, world, p.trade, state, frame, jnp.where(ready, toward(target, position), 0))
