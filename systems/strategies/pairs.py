"""Pairs traders: a spread z-score on a pair of symbols, long one leg and short the other.

Each agent watches the spread ``log(A) - hedge * log(B)`` of the pair's closes over the
last ``lookback`` bars. When the last spread sits more than ``entry`` standard deviations
above its mean (A rich against B) its targets are short ``max_position`` shares of A and
long the same value of B (``hedge`` times, at the last prices); more than ``entry`` below,
the reverse. Within ``exit`` deviations of the mean both targets are flat; in between it
holds. It trades toward the targets in slices of at most ``size`` shares per leg and
tick, with immediate-or-cancel orders ``collar`` through the reference (see ``_signal``),
so one agent trades two symbols in one tick. Shorts are borrowed like anyone's: up to
``max_short`` shares per symbol, within the borrow pool.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.frame import Frame
from components.indicators import IndicatorSpec
from components.orders import OrderBatch
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._signal import Trade, TradeConfig, make_trade, toward, trade_holdings, trade_rows

KIND = "pairs"
ROWS_PER_AGENT = 4  # per leg: cancel of a resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):
    leg_a: int = setting(0, doc="Symbol A of the pair, as a row of ``market.symbols``.")
    leg_b: int = setting(1, doc="Symbol B of the pair.")
    hedge: float = setting(1.0, lo=1e-06, hi=100.0, doc=(
        "Hedge ratio: the spread is log(A) - hedge * log(B); leg B's value is hedge times A's."))
    lookback: int = setting(50, lo=3, doc="Bars in the spread's mean and standard deviation.")
    entry: float = setting(2.0, doc="|z| above which an agent opens the spread trade.")
    exit: float = setting(0.5, doc="|z| below which it closes it.")
    max_short: int = setting(500, doc="Largest short per symbol, in shares (the short leg).")


@struct.dataclass
class Params:
    a: Trade  # [M] leg A: symbol, size, max_position, collar
    b: Trade  # [M] leg B: the same limits on the other symbol
    hedge: jax.Array  # f64[]
    entry: jax.Array  # f64[]
    exit: jax.Array  # f64[]
    lookback: int = struct.field(pytree_node=False, default=50)  # static: a window length


def check(cfg: Config, n_symbols: int) -> None:
    """Two different symbol rows of the market; ``exit`` below ``entry``."""
    for key, value in (("leg_a", cfg.leg_a), ("leg_b", cfg.leg_b)):
        if not 0 <= value < n_symbols:
            raise ValueError(f"population.{KIND}.{key}: a symbol row in [0, {n_symbols - 1}], got {value}")
    if cfg.leg_a == cfg.leg_b:
        raise ValueError(f"population.{KIND}.leg_b: must differ from leg_a ({cfg.leg_a})")
    if not cfg.exit < cfg.entry:
        raise ValueError(f"population.{KIND}.exit: must be below entry ({cfg.entry}), got {cfg.exit}")


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Every agent trades the configured pair with its own size and position limits."""
    check(cfg, n_symbols)
    a_sym, b_sym = int(cfg.leg_a), int(cfg.leg_b)
    a = make_trade(cfg, count, rng, n_symbols)
    return Params(
        a=a.replace(symbol=jnp.full(count, a_sym, jnp.int32)),
        b=a.replace(symbol=jnp.full(count, b_sym, jnp.int32)),
        hedge=jnp.asarray(cfg.hedge, jnp.float64),
        entry=jnp.asarray(cfg.entry, jnp.float64),
        exit=jnp.asarray(cfg.exit, jnp.float64),
        lookback=int(cfg.lookback),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units, and ``shares`` of leg A (none by default: pairs traders start flat)."""
    return trade_holdings(cfg, params.a, n_symbols)


def indicators(cfg: Config) -> IndicatorSpec:
    """An SMA of the lookback, so the close window keeps ``lookback`` bars."""
    return IndicatorSpec(sma=(int(cfg.lookback),))


def spread_z(static: WorldStatic, state: WorldState, a: int, b: int, hedge, lookback: int):
    """z-score of the last spread ``log(A) - hedge * log(B)`` against its last ``lookback``
    bars (population standard deviation), and whether it is defined. f64[], bool[]"""
    ind = state.indicators
    w = static.indicators.window
    cols = (ind.bars - 1 - jnp.arange(lookback)) % w  # newest first
    pa, pb = ind.window[a, cols], ind.window[b, cols]
    ok = (ind.bars >= lookback) & (pa > 0).all() & (pb > 0).all()
    spread = jnp.log(jnp.where(pa > 0, pa, 1.0)) - hedge * jnp.log(jnp.where(pb > 0, pb, 1.0))
    std = spread.std()
    ok = ok & (std > 0)
    return jnp.where(ok, (spread[0] - spread.mean()) / jnp.where(ok, std, 1.0), 0.0), ok


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> OrderBatch:
    """Returns 4 rows per agent (leg A: cancel, IOC; leg B: cancel, IOC)."""
    del key  # deterministic given the market
    # Every agent of the kind trades the same pair: its symbols are the same in every row.
    a, b = p.a.symbol[0], p.b.symbol[0]
    z, ready = spread_z(static, state, a, b, p.hedge, p.lookback)
    rows = kind.start + jnp.arange(kind.count)
    pos_a = state.wallet.position[rows, a]
    pos_b = state.wallet.position[rows, b]
    ref = frame.view.ref
    side = jnp.where(z > p.entry, -1, jnp.where(z < -p.entry, 1, 0))  # A's direction
    flat = jnp.abs(z) < p.exit
    target_a = jnp.where(flat, 0, jnp.where(side != 0, side * p.a.max_position, pos_a))
    # Leg B: the opposite position of hedge times A's value at the reference prices.
    value_b = -p.hedge * p.a.max_position * ref[a] / ref[b]
    target_b = jnp.where(flat, 0, jnp.where(side != 0, jnp.round(side * value_b).astype(jnp.int64), pos_b))
    want_a = jnp.where(ready, toward(target_a, pos_a), 0)
    want_b = jnp.where(ready, toward(target_b, pos_b), 0)
    leg_a = trade_rows(static, kind, world, p.a, state, frame, want_a)
    leg_b = trade_rows(static, kind, world, p.b, state, frame, want_b)
    # Rows per agent: A's two rows, then B's two.
    ra = jax.tree.map(lambda x: x.reshape(kind.count, 2), leg_a)
    rb = jax.tree.map(lambda x: x.reshape(kind.count, 2), leg_b)
    return jax.tree.map(lambda x, y: jnp.concatenate([x, y], axis=1).reshape(-1), ra, rb)
