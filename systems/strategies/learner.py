"""Learners: agents whose trades come from outside the tick, a reinforcement-learning
policy's actions (``qtg.rl``).

Each agent trades one symbol (assigned round robin, like a signal trader's). Its action
is an integer in ``[0, 2 * levels]`` held in the kind's state (``LearnerState.action``),
which the environment sets before each tick: action ``a`` asks for
``(a - levels) * size // levels`` shares, so ``levels`` holds, ``0`` sells ``size`` and
``2 * levels`` buys ``size``. The wish becomes a CANCEL of any resting order and an
immediate-or-cancel order ``collar`` through the reference, capped by ``max_position``,
unreserved cash and shares (plus ``max_short`` where the market allows shorts), exactly
as a signal trader's (``_signal.trade_rows``). An action stays in force until it is set
again; a world built from a config starts every learner on hold.

What a learner sees is ``systems.features`` (the observation contract the environments
and a trained policy share).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.indicators import IndicatorSpec
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.features import INDICATORS
from systems.strategies._signal import Trade, TradeConfig, make_trade, trade_holdings, trade_rows

KIND = "learner"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order
EXTERNAL = True  # its actions are set from outside the tick (qtg.rl)


@dataclasses.dataclass
class Config(TradeConfig):
    size: list[int] = setting([50, 50], lo=1, doc=(
        "Range of the largest order in shares (each agent draws one): the size of the extreme actions."))
    levels: int = setting(2, lo=1, hi=16, doc=(
        "Order sizes per side: actions are 0..2*levels; levels holds, each step away trades size/levels more."))
    max_short: int = setting(0, doc="Shares an agent may be short, where the market allows shorts (0: long only).")


@struct.dataclass
class Params:
    """Per-agent parameters, one row per learner."""

    trade: Trade
    levels: jax.Array  # i64[M]


@struct.dataclass
class LearnerState:
    """The learners' own state: the action in force, one per agent."""

    action: jax.Array  # i32[M] in [0, 2 * levels]


def indicators(cfg: Config) -> IndicatorSpec:
    """The series a learner's observation reads (``systems.features``)."""
    del cfg
    return INDICATORS


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    return Params(trade=make_trade(cfg, count, rng, n_symbols), levels=jnp.full(count, cfg.levels, jnp.int64))


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    return trade_holdings(cfg, params.trade, n_symbols)


def init_state(cfg: Config, params: Params, n_symbols: int) -> LearnerState:
    """Every learner on hold."""
    del n_symbols
    return LearnerState(action=jnp.asarray(params.levels, jnp.int32))


def wish(params: Params, action: jax.Array) -> jax.Array:
    """The shares each action asks for (> 0 buys, < 0 sells). i64[M]"""
    step = action.astype(jnp.int64) - params.levels  # rounded toward hold, the same both ways
    return jnp.sign(step) * (jnp.abs(step) * params.trade.size // params.levels)


def set_actions(state: WorldState, kind: str, action: jax.Array) -> WorldState:
    """``state`` with the action of every agent of the external kind ``kind`` (its state
    has an ``action`` field) set to ``action`` (i32[M], or one for all)."""
    own = state.kinds[kind]
    action = jnp.broadcast_to(jnp.asarray(action, jnp.int32), own.action.shape)
    return state.replace(kinds={**state.kinds, kind: own.replace(action=action)})


def with_actions(state: WorldState, action: jax.Array) -> WorldState:
    """``state`` with every learner's action set to ``action`` (i32[M], or one for all):
    what an environment does before each tick."""
    return set_actions(state, KIND, action)


def decide(static: WorldStatic, kind: KindStatic, world: WorldParams, params: Params, state: WorldState,
           frame, key: jax.Array):
    """Each learner's action in force -> its two order rows; its state unchanged."""
    del key
    own = state.kinds[KIND]
    return trade_rows(static, kind, world, params.trade, state, frame, wish(params, own.action)), own
