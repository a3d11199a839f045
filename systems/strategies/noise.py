"""Noise traders: random side and size, prices near the current mid.

Each tick a trader acts with probability ``activity``, scaled by its symbol's recent
volatility: ``(ATR(short) / ATR(long)) ** vol_feedback`` (clipped to [0.25, 4]), so
turbulent markets draw more orders and calm ones fewer (volatility clusters). Acting, it cancels its resting
order (it keeps at most one) and sends a new one: with probability ``aggressive`` an
immediate-or-cancel order priced ``collar`` through the reference (it takes liquidity and
walks the book), otherwise a good-till-cancel limit order at its anchor price times
``1 + price_sigma * z`` (the anchor is a blend of the symbol's fair value and the
reference price, ``anchor`` being the fair value's weight) with ``z`` approximately standard normal (an Irwin-Hall sum
of four uniforms, so |z| <= 3.46), which may cross or rest. Sizes are
capped by the cash and shares not reserved by resting orders; a sale may go short by up
to ``max_short`` shares, borrowed from the symbol's pool.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.agents import order_id
from components.frame import Frame
from components.indicators import IndicatorSpec
from components.orders import OrderBatch, OrderType, Side
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.fusion import materialised
from systems.rng import hashed_bits
from systems.strategies._rows import (
    affordable,
    cancel_resting,
    collar_price,
    holdings_in_own_symbol,
    interleave,
)
from systems.ticks import round_tick

KIND = "noise"
ROWS_PER_AGENT = 2  # cancel of the resting order, new order


@dataclasses.dataclass
class Config:
    count: int = setting(10)
    activity: list[float] = setting([0.2, 0.5], hi=1.0, doc="Range of the probability of acting in a tick.")
    size: list[int] = setting([1, 100], lo=1, doc=(
        "Order size range in shares (each order draws uniformly from it)."))
    aggressive: list[float] = setting([0.2, 0.4], hi=1.0, doc=(
        "Range of the probability that an action is an immediate-or-cancel order."))
    price_sigma: list[float] = setting([0.001, 0.003], hi=0.5, doc=(
        "Range of the relative spread of limit prices around the reference."))
    collar: float = setting(0.02, hi=0.5, doc=(
        "How far through the reference an aggressive order may reach (fraction)."))
    cash: float = setting(100_000.0, doc="Starting cash per trader, in currency.")
    shares: int = setting(500, doc="Starting shares per trader in its symbol.")
    max_short: int = setting(100, doc="Largest short a trader may hold, in shares (0: long only).")
    anchor: list[float] = setting([0.3, 0.7], hi=1.0, doc=(
        "Range of the fair value's weight in a trader's limit prices (0: the reference only)."))
    vol_feedback: float = setting(2.0, hi=4.0, doc=(
        "Exponent of the short/long ATR ratio that scales activity (0: constant activity)."))
    vol_periods: list[int] = setting([5, 100], lo=1, doc=(
        "Short and long ATR periods of the volatility feedback, in ticks."))


FEEDBACK_CLIP = (0.25, 4.0)  # bounds of the volatility multiplier of activity


@struct.dataclass
class Params:
    symbol: jax.Array  # i32[M]
    activity: jax.Array  # f64[M] probability per tick
    size_lo: jax.Array  # i64[M] shares
    size_hi: jax.Array  # i64[M] shares
    aggressive: jax.Array  # f64[M] probability
    price_sigma: jax.Array  # f64[M] fraction
    collar: jax.Array  # f64[M] fraction
    anchor: jax.Array  # f64[M] weight of the fair value in limit prices
    vol_feedback: jax.Array  # f64[] exponent of the ATR ratio
    vol_periods: tuple[int, int] = struct.field(pytree_node=False, default=(5, 100))  # static


def indicators(cfg: Config) -> IndicatorSpec:
    """The two ATRs of the volatility feedback (none when it is off)."""
    return IndicatorSpec(atr=tuple(sorted(set(cfg.vol_periods)))) if cfg.vol_feedback > 0 else IndicatorSpec()


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each trader's parameters; symbols are assigned round-robin."""
    return Params(
        symbol=jnp.asarray(np.arange(count) % n_symbols, jnp.int32),
        activity=jnp.asarray(rng.uniform(*cfg.activity, count), jnp.float64),
        size_lo=jnp.full(count, cfg.size[0], jnp.int64),
        size_hi=jnp.full(count, cfg.size[1], jnp.int64),
        aggressive=jnp.asarray(rng.uniform(*cfg.aggressive, count), jnp.float64),
        price_sigma=jnp.asarray(rng.uniform(*cfg.price_sigma, count), jnp.float64),
        collar=jnp.full(count, cfg.collar, jnp.float64),
        anchor=jnp.asarray(rng.uniform(*cfg.anchor, count), jnp.float64),
        vol_feedback=jnp.asarray(cfg.vol_feedback, jnp.float64),
        vol_periods=(int(cfg.vol_periods[0]), int(cfg.vol_periods[1])) if cfg.vol_feedback > 0 else (),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return holdings_in_own_symbol(cfg.cash, cfg.shares, params.symbol, n_symbols)


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> OrderBatch:
    """Returns 2 rows per trader (cancel, new order), ``count * 2`` rows."""
    n = kind.count
    rows = kind.start + jnp.arange(n)
    sym = p.symbol
    tick = world.tick_size[sym]
    ref = frame.view.ref[sym]

    # One draw of three 32-bit words per trader (systems.rng), split into fields: far
    # cheaper on a CPU than separate uniform and normal draws.
    bits = hashed_bits(key, (3, n))
    u_active = (bits[0] >> 8).astype(jnp.float64) * 2.0**-24
    buy = (bits[0] & 1) == 1
    side = jnp.where(buy, Side.BUY, Side.SELL).astype(jnp.int8)
    span = p.size_hi - p.size_lo + 1
    size = p.size_lo + (((bits[1] >> 16).astype(jnp.int64) * span) >> 16)
    aggressive = (bits[1] & 0xFFFF).astype(jnp.float64) * 2.0**-16 < p.aggressive
    active = u_active < p.activity * _vol_multiplier(static, p, frame)[sym]
    # Approximately standard normal: Irwin-Hall sum of four 8-bit uniforms, |z| <= 3.46.
    quarters = (bits[2][None, :] >> jnp.array([0, 8, 16, 24], jnp.uint32)[:, None]) & 0xFF
    z = ((quarters.sum(axis=0).astype(jnp.float64) + 2.0) / 256.0 - 2.0) * 3.0**0.5

    centre = p.anchor * frame.view.fair[sym] + (1.0 - p.anchor) * ref
    passive_price = round_tick(centre * (1.0 + p.price_sigma * z), tick)
    price = jnp.where(aggressive, collar_price(buy, ref, p.collar, tick), passive_price)
    qty = jnp.minimum(size, affordable(state, rows, sym, buy, price, world.max_short[rows]))
    # Computed once: the rows' price, qty and valid are separate loops, and each would
    # otherwise run the whole pricing (the tick: 0.08 ms less at seed_100k, 1.0 ms at a
    # million agents).
    price, qty = materialised(price), materialised(qty)

    new = OrderBatch(
        valid=active & (qty > 0),
        id=order_id(state.tick, rows, side.astype(jnp.int64), static.n_agents),
        agent=rows.astype(jnp.int32),
        symbol=sym,
        side=side,
        kind=jnp.where(aggressive, OrderType.IOC, OrderType.LIMIT).astype(jnp.int8),
        price=price,
        qty=qty,
    )

    cancel = cancel_resting(state, rows, when=active)
    return interleave(cancel, new)


def _vol_multiplier(static: WorldStatic, p: Params, frame: Frame) -> jax.Array:
    """Per symbol ``(ATR(short) / ATR(long)) ** vol_feedback``, clipped; 1 until both are
    ready, or everywhere when the feedback is off. f64[S]"""
    if not p.vol_periods:
        return jnp.ones(static.n_symbols)
    ratio = frame.indicators.atr_ratio(*p.vol_periods)
    # Materialised: gathered by every trader's row, it would be recomputed per row.
    return materialised(jnp.clip(ratio ** p.vol_feedback, *FEEDBACK_CLIP))
