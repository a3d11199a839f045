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

KIND = "bollinger_reversion"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):
    period: list[int] = dataclasses.field(default_factory=lambda: [20, 20])
    """Range of band periods in bars (each agent draws one; every one is computed)."""
    k: float = 2.0
    """Band half-width in population standard deviations (one value: bands are per k)."""


BOUNDS = {  # allowed values of each Config field (default: >= 0)
    **TRADE_BOUNDS,
    "period": (2, None),
    "k": (0.0, 10.0),
}


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    period: jax.Array  # i32[M] band period in bars
    k: jax.Array  # f64[M] band half-width in standard deviations


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's limits and period uniformly from the ranges."""
    return Params(
        trade=make_trade(cfg, count, rng, n_symbols),
        period=jnp.asarray(draw_int(rng, cfg.period, count), jnp.int32),
        k=jnp.full(count, float(cfg.k), jnp.float64),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return trade_holdings(cfg, params.trade, n_symbols)


def indicators(cfg: Config) -> IndicatorSpec:
    """Bollinger bands of every period an agent may draw, at the one ``k``."""
    return IndicatorSpec(bollinger=tuple((p, float(cfg.k)) for p in period_range(cfg.period)))


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
    bands = frame.indicators.bollinger
    sym = p.trade.symbol
    col = column(static.indicators.bollinger, jnp.stack([p.period.astype(jnp.float64), p.k], axis=1))
    # %B compares the bar's close with the bands it was computed with; a flat window
    # reads 0.5, inside both bands.
    pct_b, ready = at(bands.percent_b, sym, col), at(bands.ready, sym, col)
    size = p.trade.size
    want = jnp.where(pct_b <= 0.0, size, jnp.where(pct_b >= 1.0, -size, 0))
    return trade_rows(static, kind, world, p.trade, state, frame, jnp.where(ready, want, 0))
