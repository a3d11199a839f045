"""Fundamentalists: they see the fair value with noise and trade toward it with finite speed.

After Lux and Marchesi (1999), Chiarella and Iori (2002) and Franke and Westerhoff (2012).
Each agent trades one symbol (assigned round-robin) and perceives its fair value as
``fair * exp(b + noise * z)``: ``b`` is the agent's own persistent log bias, drawn once
(normal, standard deviation ``bias``), and ``z`` a fresh standard normal each tick. It
acts in a tick with probability ``reaction`` (its speed). Acting, with the log gap
``g = log(perceived fair / reference price)``, it targets a long position of
``max_position`` shares when ``g > entry``, a short one of ``max_position`` when
``g < -entry`` (within ``max_short`` and the market's short-selling rules), flat when
``|g| < exit``, and its current position in between (hysteresis). It trades toward the
target with one immediate-or-cancel order ``collar`` through the reference, capped by
``size`` and by the cash or shares not reserved (``_signal.trade_rows``). Not acting, or
with no fair value or price to read, it does nothing.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.frame import Frame
from components.orders import OrderBatch
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.rng import hashed_bits
from systems.strategies._signal import Trade, TradeConfig, make_trade, toward, trade_holdings, trade_rows

KIND = "fundamentalist"
ROWS_PER_AGENT = 2  # cancel of a resting order, immediate-or-cancel order


@dataclasses.dataclass
class Config(TradeConfig):  # count (0: off), size, max_position, collar, cash, shares, latency
    reaction: list[float] = setting([0.05, 0.2], hi=1.0, doc=(
        "Range of the probability of acting in a tick (the speed of the fundamentalist)."))
    entry: list[float] = setting([0.002, 0.004], hi=1.0, doc=(
        "Range of the log gap |log(perceived fair / price)| above which an agent takes a full position."))
    exit: list[float] = setting([0.0, 0.0005], hi=1.0, doc=(
        "Range of the log gap below which an agent goes flat (every exit <= every entry)."))
    bias: float = setting(0.0005, hi=1.0, doc=(
        "Standard deviation of each agent's persistent log bias of the fair value it sees."))
    noise: float = setting(0.0005, hi=1.0, doc=(
        "Standard deviation of the fresh log noise of the fair value it sees, each tick."))
    max_short: int = setting(500, doc="Largest short an agent may hold, in shares (0: long only).")


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    bias: jax.Array  # f64[M] persistent log bias of the perceived fair value
    reaction: jax.Array  # f64[M] probability of acting per tick
    entry: jax.Array  # f64[M] log gap that opens a position
    exit: jax.Array  # f64[M] log gap within which the position is closed
    noise: jax.Array  # f64[] sd of the per-tick log noise


def check(cfg: Config, n_symbols: int) -> None:
    """Every exit at or below every entry, so a gap never asks for both a position and flat."""
    del n_symbols
    if cfg.exit[1] > cfg.entry[0]:
        raise ValueError(f"population.{KIND}.exit: every exit must be <= every entry "
                         f"({cfg.entry}), got {cfg.exit}")


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's limits, then its bias, reaction, entry and exit, in that order."""
    check(cfg, n_symbols)
    trade = make_trade(cfg, count, rng, n_symbols)
    return Params(
        trade=trade,
        bias=jnp.asarray(rng.normal(0.0, cfg.bias, count), jnp.float64),
        reaction=jnp.asarray(rng.uniform(*cfg.reaction, count), jnp.float64),
        entry=jnp.asarray(rng.uniform(*cfg.entry, count), jnp.float64),
        exit=jnp.asarray(rng.uniform(*cfg.exit, count), jnp.float64),
        noise=jnp.asarray(cfg.noise, jnp.float64),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and ``shares`` of its own symbol (none by default: it starts flat)."""
    return trade_holdings(cfg, params.trade, n_symbols)


def draws(key: jax.Array, n: int) -> tuple[jax.Array, jax.Array]:
    """Per agent a uniform in [0, 1) (whether it acts) and a standard normal (its noise).

    Two 32-bit words per agent (``systems.rng.hashed_bits``): the uniform from the first
    word's top 24 bits; the normal by Box-Muller from 24 bits of each word (the first
    word's low 8 bits and the second word make the radius and angle). f64[n], f64[n]."""
    bits = hashed_bits(key, (2, n))
    act = (bits[0] >> 8).astype(jnp.float64) * 2.0**-24
    # Radius from (0, 1]: never log(0). Angle from [0, 1).
    u1 = 1.0 - (((bits[0] & 0xFF) << 16) | (bits[1] >> 16)).astype(jnp.float64) * 2.0**-24
    u2 = (bits[1] & 0xFFFF).astype(jnp.float64) * 2.0**-16
    z = jnp.sqrt(-2.0 * jnp.log(u1)) * jnp.cos(2.0 * jnp.pi * u2)
    return act, z


def target(gap: jax.Array, entry: jax.Array, exit: jax.Array, max_position: jax.Array,
           position: jax.Array) -> jax.Array:
    """The position an agent wants at log gap ``gap``: +max_position above ``entry``,
    -max_position below ``-entry``, flat within ``exit``, else ``position``. i64[M] shares."""
    return jnp.where(gap > entry, max_position,
                     jnp.where(gap < -entry, -max_position,
                               jnp.where(jnp.abs(gap) < exit, 0, position))).astype(jnp.int64)


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> OrderBatch:
    """Returns 2 rows per agent (cancel, IOC), ``count * 2`` rows."""
    rows = kind.start + jnp.arange(kind.count)
    sym = p.trade.symbol
    fair, ref = frame.view.fair[sym], frame.view.ref[sym]
    act, z = draws(key, kind.count)
    seen = (fair > 0) & (ref > 0)
    gap = (jnp.log(jnp.where(seen, fair, 1.0)) - jnp.log(jnp.where(seen, ref, 1.0))
           + p.bias + p.noise * z)
    position = state.wallet.position[rows, sym]
    aim = target(gap, p.entry, p.exit, p.trade.max_position, position)
    want = jnp.where(seen & (act < p.reaction), toward(aim, position), 0)
    return trade_rows(static, kind, world, p.trade, state, frame, want)
