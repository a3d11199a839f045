"""Noise traders: the market's uninformed crowd, each a fundamentalist or a chartist at a
time, switching between the two (Franke and Westerhoff 2012, after Lux and Marchesi 1999
and Kirman 1993).

Each tick a trader acts with probability ``activity``, scaled by its symbol's recent
volatility, ``(ATR(short) / ATR(long)) ** vol_feedback`` (clipped to [0.25, 4]), and by
``chartist_activity`` while it is a chartist. Acting, it cancels its resting order (it
keeps at most one) and sends a new one. It buys with probability ``(1 + tanh(lean)) / 2``,
where the lean depends on its role:

* a **fundamentalist** leans ``value_weight * log(fair / ref)``: it sees the fair value,
  noisily, and leans toward it;
* a **chartist** leans ``trend_weight * log(ref / EMA(trend_period))``: it follows the
  recent trend, with orders ``chartist_size`` times as large;

and both lean back toward their starting holding, by ``rebalance * (holding - position) /
holding`` (a trader does not sink all its cash into one side of a trend).

With probability ``aggressive`` (``chartist_aggressive`` for a chartist) the order is
immediate-or-cancel, priced ``collar`` through the reference (it takes liquidity and walks
the book); otherwise it is a good-till-cancel limit order that rests on its side of the
centre, ``price_sigma * |z|`` of it away (a buy below, a sell above) and no better than
the best quote on its side (it adds depth behind the touch), where the centre (``_rows.value_estimate``) is the reference price moved by public
news and pulled toward the fair value by ``market.anchoring * anchor`` of the gap, and ``z`` is approximately standard normal (an
Irwin-Hall sum of four uniforms, |z| <= 3.46). Sizes are heavy-tailed (Gopikrishnan et al.
2000; Maslov and Mills 2001): Pareto with tail exponent ``size_tail`` from ``size[0]``,
capped at ``size[1]`` (``size_tail = 0``: uniform on ``size``), and capped by the cash and
shares not reserved by resting orders; a sale may go short by up to ``max_short`` shares.

Switching. Per symbol, with ``x = (fundamentalists - chartists) / traders`` and the
mispricing ``m = 100 * log(ref / fair)`` (percent), fundamentalism is worth ``a = predisposition
+ herding * x + misalignment * m**2``; each tick a chartist becomes a fundamentalist with
probability ``min(1, switching * exp(a))`` and a fundamentalist a chartist with probability
``min(1, switching * exp(-a))`` (the new role acts from the next tick). Herding above 1
makes both crowds self-reinforcing, so a symbol stays in a calm (fundamentalist) or a
turbulent (chartist) regime for a long time, until the mispricing the chartists build up
draws traders back: volatility clusters at every time scale. A fraction ``chartists`` of
each symbol's traders start as chartists.
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
from components.money import SCALE
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
    value_estimate,
)
from systems.ticks import ceil_tick, floor_tick

KIND = "noise"
ROWS_PER_AGENT = 2  # cancel of the resting order, new order


@dataclasses.dataclass
class Config:
    count: int = setting(10)
    activity: list[float] = setting([0.2, 0.5], hi=1.0, doc="Range of the probability of acting in a tick.")
    size: list[int] = setting([10, 300], lo=1, doc=(
        "Order sizes in shares: the Pareto minimum and the cap (``size_tail`` 0: a uniform range)."))
    size_tail: float = setting(1.5, hi=10.0, doc=(
        "Tail exponent of the Pareto order sizes (about 1.5 in real order books; 0: uniform sizes)."))
    aggressive: list[float] = setting([0.4, 0.6], hi=1.0, doc=(
        "Range of a fundamentalist's probability that an action is an immediate-or-cancel order."))
    price_sigma: list[float] = setting([0.001, 0.003], hi=0.5, doc=(
        "Range of the relative distance of resting limit prices from the centre (times |z|)."))
    collar: float = setting(0.02, hi=0.5, doc=(
        "How far through the reference an aggressive order may reach (fraction)."))
    cash: float = setting(100_000.0, doc="Starting cash per trader, in currency.")
    shares: int = setting(500, doc="Starting shares per trader in its symbol.")
    max_short: int = setting(100, doc="Largest short a trader may hold, in shares (0: long only).")
    anchor: list[float] = setting([0.3, 0.7], hi=1.0, doc=(
        "Range of the pull of limit prices toward fair value, relative to ``market.anchoring``."))
    vol_feedback: float = setting(2.0, hi=4.0, doc=(
        "Exponent of the short/long ATR ratio that scales activity (0: constant activity)."))
    vol_periods: list[int] = setting([5, 1000], lo=1, doc=(
        "Short and long ATR periods of the volatility feedback, in ticks."))
    chartists: float = setting(0.5, hi=1.0, doc="Fraction of each symbol's traders who start as chartists.")
    switching: float = setting(0.01, hi=1.0, doc=(
        "Base probability per tick of changing role (0: every trader keeps its starting role)."))
    herding: float = setting(1.7, hi=10.0, doc=(
        "Weight of the majority in the worth of fundamentalism (above 1: self-reinforcing regimes)."))
    predisposition: float = setting(0.0, lo=-10.0, hi=10.0, doc=(
        "Worth of fundamentalism when neither crowd dominates (positive: traders lean fundamentalist)."))
    misalignment: float = setting(0.3, hi=1000.0, doc=(
        "Weight of the squared mispricing (percent) in the worth of fundamentalism."))
    value_weight: float = setting(10.0, hi=100_000.0, doc=(
        "How strongly a fundamentalist leans toward fair value, per unit of log(fair / ref)."))
    trend_weight: float = setting(10.0, hi=100_000.0, doc=(
        "How strongly a chartist follows the trend, per unit of log(ref / EMA(trend_period))."))
    trend_period: int = setting(20, lo=1, hi=10_000, doc="EMA period of the chartists' trend, in ticks.")
    chartist_activity: float = setting(2.0, hi=100.0, doc="A chartist's activity relative to its ``activity``.")
    rebalance: float = setting(0.2, hi=100.0, doc=(
        "How strongly a trader leans back toward its starting holding, per holding's worth of shares away "
        "from it (0: never)."))
    chartist_size: float = setting(3.0, lo=0.01, hi=100.0, doc="A chartist's order sizes relative to ``size``.")
    chartist_aggressive: float = setting(0.8, hi=1.0, doc=(
        "A chartist's probability that an action is an immediate-or-cancel order."))


FEEDBACK_CLIP = (0.25, 4.0)  # bounds of the volatility multiplier of activity


@struct.dataclass
class Params:
    symbol: jax.Array  # i32[M]
    activity: jax.Array  # f64[M] probability per tick
    size_lo: jax.Array  # i64[M] shares: the Pareto minimum (or the uniform range's low end)
    size_hi: jax.Array  # i64[M] shares: the cap
    aggressive: jax.Array  # f64[M] probability (as a fundamentalist)
    price_sigma: jax.Array  # f64[M] fraction
    collar: jax.Array  # f64[M] fraction
    anchor: jax.Array  # f64[M] pull toward fair value, relative to market.anchoring
    vol_feedback: jax.Array  # f64[] exponent of the ATR ratio
    size_tail: jax.Array  # f64[] Pareto exponent (0: uniform)
    switching: jax.Array  # f64[]
    herding: jax.Array  # f64[]
    predisposition: jax.Array  # f64[]
    misalignment: jax.Array  # f64[]
    value_weight: jax.Array  # f64[]
    trend_weight: jax.Array  # f64[]
    chartist_activity: jax.Array  # f64[]
    chartist_size: jax.Array  # f64[]
    rebalance: jax.Array  # f64[]
    holding: jax.Array  # f64[] the starting holding, shares
    traders: jax.Array  # f64[S] traders per symbol (fixed: the switching's crowd sizes)
    chartist_aggressive: jax.Array  # f64[]
    vol_periods: tuple[int, int] = struct.field(pytree_node=False, default=(5, 1000))  # static
    trend_period: int = struct.field(pytree_node=False, default=20)  # static
    chartists: float = struct.field(pytree_node=False, default=0.5)  # static: the starting share


@struct.dataclass
class State:
    chartist: jax.Array  # bool[M] the trader's role this tick


def indicators(cfg: Config) -> IndicatorSpec:
    """The chartists' EMA and the two ATRs of the volatility feedback (when it is on)."""
    atr = tuple(sorted(set(cfg.vol_periods))) if cfg.vol_feedback > 0 else ()
    return IndicatorSpec(atr=atr, ema=(cfg.trend_period,))


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each trader's parameters; symbols are assigned round-robin."""
    scalar = {name: jnp.asarray(float(getattr(cfg, name)), jnp.float64) for name in (
        "vol_feedback", "size_tail", "switching", "herding", "predisposition", "misalignment",
        "value_weight", "trend_weight", "chartist_activity", "chartist_size", "chartist_aggressive", "rebalance")}
    scalar["holding"] = jnp.asarray(float(cfg.shares), jnp.float64)
    symbol = np.arange(count) % n_symbols
    return Params(
        symbol=jnp.asarray(symbol, jnp.int32),
        traders=jnp.asarray(np.bincount(symbol, minlength=n_symbols), jnp.float64),
        activity=jnp.asarray(rng.uniform(*cfg.activity, count), jnp.float64),
        size_lo=jnp.full(count, cfg.size[0], jnp.int64),
        size_hi=jnp.full(count, cfg.size[1], jnp.int64),
        aggressive=jnp.asarray(rng.uniform(*cfg.aggressive, count), jnp.float64),
        price_sigma=jnp.asarray(rng.uniform(*cfg.price_sigma, count), jnp.float64),
        collar=jnp.full(count, cfg.collar, jnp.float64),
        anchor=jnp.asarray(rng.uniform(*cfg.anchor, count), jnp.float64),
        **scalar,
        vol_periods=(int(cfg.vol_periods[0]), int(cfg.vol_periods[1])) if cfg.vol_feedback > 0 else (),
        trend_period=int(cfg.trend_period),
        chartists=float(cfg.chartists),
    )


def init_state(cfg: Config, params: Params, n_symbols: int) -> State:
    """The first ``round(chartists * n)`` of each symbol's ``n`` traders start as chartists."""
    count = int(params.symbol.shape[0])
    rank = np.arange(count) // n_symbols  # the trader's place among its symbol's traders
    starting = np.round(cfg.chartists * np.asarray(params.traders))[np.asarray(params.symbol)]
    return State(chartist=jnp.asarray(rank < starting))


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return holdings_in_own_symbol(cfg.cash, cfg.shares, params.symbol, n_symbols)


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[OrderBatch, State]:
    """Returns 2 rows per trader (cancel, new order), ``count * 2`` rows, and the roles of
    the next tick."""
    n = kind.count
    rows = kind.start + jnp.arange(n)
    sym = p.symbol
    tick = world.tick_size[sym]
    view = frame.view
    ref = view.ref[sym]
    chartist = state.kinds[KIND].chartist

    # One draw of five 32-bit words per trader (systems.rng), split into fields: far
    # cheaper on a CPU than separate uniform and normal draws.
    bits = hashed_bits(key, (5, n))
    u_active, u_side, u_size, u_switch = (_unit(bits[i]) for i in (0, 1, 2, 4))
    # The low bytes of words 0 and 1 (the uniforms above use their top 24 bits): word 3
    # is all z's.
    u_aggressive = (((bits[0] & 0xFF) << 8) | (bits[1] & 0xFF)).astype(jnp.float64) * 2.0**-16
    # Approximately standard normal: Irwin-Hall sum of four 8-bit uniforms, |z| <= 3.46.
    quarters = (bits[3][None, :] >> jnp.array([0, 8, 16, 24], jnp.uint32)[:, None]) & 0xFF
    z = ((quarters.sum(axis=0).astype(jnp.float64) + 2.0) / 256.0 - 2.0) * 3.0**0.5

    lean = _lean(p, frame)  # f64[2, S]: log(fair / ref), log(ref / EMA)
    pull = jnp.where(chartist, p.trend_weight * lean[1][sym], p.value_weight * lean[0][sym])
    position = state.wallet.position[rows, sym].astype(jnp.float64)
    pull = pull - p.rebalance * (position - p.holding) / jnp.maximum(p.holding, 1.0)
    buy = u_side < 0.5 * (1.0 + jnp.tanh(pull))
    side = jnp.where(buy, Side.BUY, Side.SELL).astype(jnp.int8)
    size = _sizes(p, u_size)
    size = jnp.where(chartist, jnp.maximum(jnp.floor(size * p.chartist_size), 1.0), size).astype(jnp.int64)
    aggressive = u_aggressive < jnp.where(chartist, p.chartist_aggressive, p.aggressive)
    rate = p.activity * jnp.where(chartist, p.chartist_activity, 1.0)
    active = u_active < rate * _vol_multiplier(static, p, frame)[sym]

    centre = value_estimate(world, view, sym, p.anchor)
    # A passive order rests on its own side of the centre, behind the best quote (it adds
    # depth; it does not improve the touch): buys below, sells above.
    depth = p.price_sigma * jnp.abs(z)
    best_bid, best_ask = view.bid[sym], view.ask[sym]
    passive_buy = floor_tick(centre * (1.0 - depth), tick)
    passive_buy = jnp.where(best_bid > 0, jnp.minimum(passive_buy, best_bid), passive_buy)
    passive_sell = ceil_tick(centre * (1.0 + depth), tick)
    passive_sell = jnp.where(best_ask > 0, jnp.maximum(passive_sell, best_ask), passive_sell)
    passive_price = jnp.where(buy, passive_buy, passive_sell)
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
    return interleave(cancel, new), State(chartist=_switch(static, p, view, chartist, u_switch))


def _unit(word: jax.Array) -> jax.Array:
    """A uniform in [0, 1) from the top 24 bits of a word."""
    return (word >> 8).astype(jnp.float64) * 2.0**-24


def _sizes(p: Params, u: jax.Array) -> jax.Array:
    """Order sizes: Pareto ``size_lo * u ** (-1 / size_tail)`` floored and capped at
    ``size_hi``, or uniform on [size_lo, size_hi] when ``size_tail`` is 0. i64[M]"""
    tail = jnp.where(p.size_tail > 0, p.size_tail, 1.0)
    pareto = p.size_lo * jnp.exp(-jnp.log1p(-u) / tail)  # 1 - u is in (0, 1]
    pareto = jnp.minimum(pareto, p.size_hi.astype(jnp.float64)).astype(jnp.int64)
    uniform = p.size_lo + jnp.floor(u * (p.size_hi - p.size_lo + 1)).astype(jnp.int64)
    return jnp.where(p.size_tail > 0, pareto, uniform)


def _lean(p: Params, frame: Frame) -> jax.Array:
    """Per symbol the fundamentalists' log(fair / ref) and the chartists' log(ref /
    EMA(trend_period)) (0 until the EMA is ready). f64[2, S]"""
    view = frame.view
    ref = jnp.maximum(view.ref, 1.0)
    value = jnp.log(jnp.maximum(view.fair, 1.0) / ref)
    ema, ready = frame.indicators.ema_at(p.trend_period)
    ema = ema * SCALE  # indicators are in currency, prices in units
    trend = jnp.where(ready & (ema > 0), jnp.log(ref / jnp.where(ema > 0, ema, 1.0)), 0.0)
    # Materialised: gathered by every trader's row, it would be recomputed per row.
    return materialised(jnp.stack([value, trend]))


def _switch(static: WorldStatic, p: Params, view, chartist: jax.Array, u: jax.Array) -> jax.Array:
    """The roles after this tick's switching (see the module docstring). bool[M]"""
    chartists = jax.ops.segment_sum(chartist.astype(jnp.float64), p.symbol, num_segments=static.n_symbols)
    x = 1.0 - 2.0 * chartists / jnp.maximum(p.traders, 1.0)
    mispricing = 100.0 * jnp.log(jnp.maximum(view.ref, 1.0) / jnp.maximum(view.fair, 1.0))
    worth = p.predisposition + p.herding * x + p.misalignment * mispricing**2
    worth = jnp.clip(worth, -50.0, 50.0)
    to_fundamentalist = jnp.minimum(1.0, p.switching * jnp.exp(worth))[p.symbol]
    to_chartist = jnp.minimum(1.0, p.switching * jnp.exp(-worth))[p.symbol]
    flip = u < jnp.where(chartist, to_fundamentalist, to_chartist)
    return chartist ^ flip


def _vol_multiplier(static: WorldStatic, p: Params, frame: Frame) -> jax.Array:
    """Per symbol ``(ATR(short) / ATR(long)) ** vol_feedback``, clipped; 1 until both are
    ready, or everywhere when the feedback is off. f64[S]"""
    if not p.vol_periods:
        return jnp.ones(static.n_symbols)
    ratio = frame.indicators.atr_ratio(*p.vol_periods)
    # Materialised: gathered by every trader's row, it would be recomputed per row.
    return materialised(jnp.clip(ratio ** p.vol_feedback, *FEEDBACK_CLIP))
