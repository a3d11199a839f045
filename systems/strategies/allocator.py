"""Allocators: learners that hold a portfolio of every symbol, their target weights set from
outside the tick (the portfolio task, ``qtg.rl.portfolio``).

Each agent's action is a vector of target weights, one per symbol, in ``[-1, 1]``, held in
the kind's state (``AllocatorState.action``), which the environment sets before each tick.
Weights whose absolute values sum to more than ``gross`` are scaled down to sum to it, so
``gross`` bounds the book's exposure (1: fully invested, no leverage). Symbol ``s``'s
target is ``trunc(w[s] * equity / ref[s])`` shares (equity: cash plus every position at
the reference prices), kept within ``[-max_short, max_position]``: a negative weight is a
short only where the market allows shorts and the agent has a ``max_short``, else it is
a flat position.

Every tick, for each symbol whose gap to its target is worth more than ``band`` of the
equity, the agent sends one immediate-or-cancel order ``collar`` through the reference
toward the target, at most ``size`` shares: sells capped by the shares held plus the
short room, buys by the cash, handed to the tick's buys in symbol order so their total
never exceeds it (a sale's proceeds fund later ticks' buys). The kind never rests an
order, so its batch is exactly one row per symbol per agent, row ``i * S + s``. An action
stays in force until it is set again; a world built from a config starts every allocator
on all-zero weights (all cash).

What an allocator sees is ``systems.features`` of every symbol (``qtg.rl.portfolio``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.indicators import IndicatorSpec
from components.money import floor_div, to_fixed
from components.orders import OrderBatch
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.features import INDICATORS
from systems.strategies._rows import available_cash, collar_price, ioc_per_symbol
from systems.strategies._signal import Trade, TradeConfig, make_trade

KIND = "allocator"
EXTERNAL = True  # its weights are set from outside the tick (qtg.rl)


@dataclasses.dataclass
class Config(TradeConfig):
    size: list[int] = setting([500, 500], lo=1, doc=(
        "Range of the most shares an agent trades in one symbol in one tick (each agent draws one)."))
    max_position: list[int] = setting([5_000, 5_000], doc=(
        "Range of the largest long position per symbol, in shares (each agent draws one)."))
    shares: int = setting(0, doc="Starting shares per agent in every symbol.")
    max_short: int = setting(0, doc="Shares an agent may be short per symbol, where the market allows shorts.")
    gross: float = setting(1.0, lo=0.0, hi=4.0, doc=(
        "The most the absolute target weights may sum to (1: fully invested without leverage)."))
    band: float = setting(0.002, lo=0.0, hi=1.0, doc=(
        "A symbol trades only when its gap to the target is worth more than this share of the equity."))


@struct.dataclass
class Params:
    """Per-agent parameters, one row per allocator (``trade.symbol`` is unused: every
    agent trades every symbol)."""

    trade: Trade
    gross: jax.Array  # f64[M]
    band: jax.Array  # f64[M] fraction of the equity


@struct.dataclass
class AllocatorState:
    """The allocators' own state: the target weights in force."""

    action: jax.Array  # f32[M, S] in [-1, 1]


def rows_per_agent(cfg: Config, n_symbols: int) -> int:
    """One IOC row per symbol."""
    del cfg
    return n_symbols


def indicators(cfg: Config) -> IndicatorSpec:
    """The series an allocator's observation reads (``systems.features``)."""
    del cfg
    return INDICATORS


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    return Params(trade=make_trade(cfg, count, rng, n_symbols), gross=jnp.full(count, cfg.gross, jnp.float64),
                  band=jnp.full(count, cfg.band, jnp.float64))


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and ``shares`` of every symbol i64[M, S]."""
    count = params.gross.shape[0]
    return np.full(count, to_fixed(cfg.cash), np.int64), np.full((count, n_symbols), int(cfg.shares), np.int64)


def init_state(cfg: Config, params: Params, n_symbols: int) -> AllocatorState:
    """Every allocator on all-zero weights."""
    del cfg
    return AllocatorState(action=jnp.zeros((params.gross.shape[0], n_symbols), jnp.float32))


def with_actions(state: WorldState, action: jax.Array) -> WorldState:
    """``state`` with every allocator's weights set to ``action`` (f32[M, S], or [S] for
    all), clipped to [-1, 1]."""
    own = state.kinds[KIND]
    action = jnp.clip(jnp.broadcast_to(jnp.asarray(action, jnp.float32), own.action.shape), -1.0, 1.0)
    return state.replace(kinds={**state.kinds, KIND: own.replace(action=action)})


def weights(params: Params, action: jax.Array) -> jax.Array:
    """The weights in force: ``action`` clipped to [-1, 1] and scaled down to sum (in
    absolute value) to at most ``gross``. f64[M, S]"""
    w = jnp.clip(action.astype(jnp.float64), -1.0, 1.0)
    total = jnp.abs(w).sum(axis=1, keepdims=True)
    g = params.gross[:, None]
    return jnp.where(total > g, w * g / jnp.where(total > 0, total, 1.0), w)


def targets(params: Params, action: jax.Array, cash: jax.Array, position: jax.Array, ref: jax.Array,
            max_short: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Each agent's target shares per symbol i64[M, S] and its equity f64[M] (units) for
    cash i64[M], positions i64[M, S], reference prices i64[S] and short limits i64[M]."""
    price = ref.astype(jnp.float64)
    equity = cash.astype(jnp.float64) + (position.astype(jnp.float64) * price[None, :]).sum(axis=1)
    want = weights(params, action) * jnp.maximum(equity, 0.0)[:, None] / jnp.where(price > 0, price, 1.0)[None, :]
    target = jnp.trunc(want).astype(jnp.int64)
    target = jnp.clip(target, -max_short[:, None], params.trade.max_position[:, None])
    return jnp.where((ref > 0)[None, :], target, position), equity


def decide(static: WorldStatic, kind: KindStatic, world: WorldParams, params: Params, state: WorldState,
           frame, key: jax.Array) -> tuple[OrderBatch, AllocatorState]:
    """Each allocator's weights in force -> one IOC row per symbol; its state unchanged."""
    del key
    own = state.kinds[KIND]
    rows = kind.start + jnp.arange(kind.count)
    ref = frame.view.ref
    pos = state.wallet.position[rows]  # [n, S]
    short = world.max_short[rows]
    target, equity = targets(params, own.action, state.wallet.cash[rows], pos, ref, short)
    want = target - pos
    worth = jnp.abs(want).astype(jnp.float64) * ref.astype(jnp.float64)[None, :]
    want = jnp.where(worth > params.band[:, None] * jnp.maximum(equity, 0.0)[:, None], want, 0)
    buy = want > 0
    price = collar_price(buy, jnp.where(ref > 0, ref, 1)[None, :], params.trade.collar[:, None],
                         world.tick_size[None, :])
    qty = jnp.minimum(jnp.abs(want), params.trade.size[:, None])
    sell_cap = jnp.maximum(pos + short[:, None], 0)
    spend = jnp.where(buy, qty * price, 0)
    before = jnp.cumsum(spend, axis=1) - spend  # the cash the lower symbols' buys take first
    left = jnp.maximum(available_cash(state, rows)[:, None] - before, 0)
    qty = jnp.maximum(jnp.minimum(qty, jnp.where(buy, floor_div(left, price), sell_cap)), 0).astype(jnp.int64)
    valid = (want != 0) & (qty > 0) & (ref > 0)[None, :]
    batch = ioc_per_symbol(static.n_agents, state.tick, rows, valid, buy, price, qty)
    return batch, own
