"""RL policy: agents that trade with a trained policy (``python -m qtg.train``), the way the
learner it was trained as did.

``population.rl_policy.policy`` names the policy: a training run's directory, its
``policy.npz``, or the ``policy.onnx`` that ``python -m qtg.export`` wrote
(``systems.policy.read_policy``). Every tick each agent builds its observation with
``systems.features`` from the tick's frame (the function the training environment
used), takes the action with the highest logit (``systems.policy.act``) and trades it as
a learner would (``strategies.learner.wish``: action ``a`` of ``2 * levels + 1`` asks for
``(a - levels) * size // levels`` shares, through ``_signal.trade_rows``). ``levels``
comes from the policy's action count; the other fields (size, max_position, collar,
cash, shares) should be those the policy was trained with.

A policy trained on another observation contract (``systems.features.SPEC.version``) is
refused when the config is checked, with one line naming the file and both versions, and
so is a policy of another task (an execution policy, ``qtg.rl.execution``: it is not a
trading agent).
The agents' last actions are kept in the kind's state (``RLPolicyState.action``).

The kind takes the learner's place in the row layout (``LAYOUT_NAME``) and draws its
parameters as the learner does, so a config whose learners are replaced by ``rl_policy``
agents builds the same world, row for row and draw for draw, and its run is the market
the policy was trained in, with the policy acting.
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
from systems import policy as pol
from systems.features import INDICATORS, features
from systems.strategies import learner
from systems.strategies._signal import TradeConfig, make_trade, trade_holdings, trade_rows

KIND = "rl_policy"
ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order
TRAINED = True  # trades with a trained policy file; the presets leave it out
LAYOUT_NAME = "learner"  # sits in the row layout where the learner it was trained as sat


@dataclasses.dataclass
class Config(TradeConfig):
    policy: str = setting("", doc=(
        "The trained policy: a training run's directory, its policy.npz, or an exported policy.onnx."))
    size: list[int] = setting([50, 50], lo=1, doc=(
        "Range of the largest order in shares (each agent draws one); as in training (population.learner.size)."))
    max_short: int = setting(0, doc="Shares an agent may be short, where the market allows shorts (0: long only).")


@struct.dataclass
class Params:
    """Per-agent parameters, one row per agent: its limits and its policy's layers (the
    same for every agent of a config, kept per agent so a sweep may vary them)."""

    trade: learner.Params
    kernels: tuple  # f32[M, in, out] per layer
    biases: tuple  # f32[M, out] per layer


@struct.dataclass
class RLPolicyState:
    action: jax.Array  # i32[M] the action each agent took last (levels before its first)


def _policy(cfg: Config):
    return pol.read_policy(cfg.policy)


def check(cfg: Config, n_symbols: int) -> None:
    """The policy file exists, is a policy, and was trained on this observation spec."""
    del n_symbols
    if not cfg.policy:
        raise ValueError(f"population.{KIND}.policy: a trained policy is needed (a training run's directory, "
                         "its policy.npz or an exported policy.onnx), got ''")
    try:
        _, meta = _policy(cfg)
    except pol.PolicyError as e:
        raise ValueError(f"population.{KIND}.policy: {e}") from None
    task = pol.task_of(meta)
    if task != "trading":
        raise ValueError(f"population.{KIND}.policy: {cfg.policy}: a policy of the {task} task, not a trading one; "
                         f"evaluate it with python -m qtg.evaluate (rl_policy trades trading policies only)")
    actions = int(meta.get("actions", 0))
    if actions < 3 or actions % 2 == 0:
        raise ValueError(f"population.{KIND}.policy: {cfg.policy}: a trading policy has an odd number of actions "
                         f"(2 * levels + 1), this one has {actions}")


def indicators(cfg: Config) -> IndicatorSpec:
    del cfg
    return INDICATORS


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    layers, meta = _policy(cfg)
    levels = (int(meta["actions"]) - 1) // 2
    trade = learner.Params(trade=make_trade(cfg, count, rng, n_symbols), levels=jnp.full(count, levels, jnp.int64))
    return Params(
        trade=trade,
        kernels=tuple(jnp.broadcast_to(jnp.asarray(w, jnp.float32), (count, *w.shape)) for w, _ in layers),
        biases=tuple(jnp.broadcast_to(jnp.asarray(b, jnp.float32), (count, *b.shape)) for _, b in layers),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    return trade_holdings(cfg, params.trade.trade, n_symbols)


def init_state(cfg: Config, params: Params, n_symbols: int) -> RLPolicyState:
    del cfg, n_symbols
    return RLPolicyState(action=jnp.asarray(params.trade.levels, jnp.int32))


def actions(params: Params, obs: jax.Array) -> jax.Array:
    """Each agent's action under its own layers: ``systems.policy.act`` row by row. i32[M]"""
    def one(obs, kernels, biases):
        return pol.act(list(zip(kernels, biases)), obs)

    return jax.vmap(one)(obs, params.kernels, params.biases)


def decide(static: WorldStatic, kind: KindStatic, world: WorldParams, params: Params, state: WorldState,
           frame, key: jax.Array):
    """Observe (``systems.features``), act (the policy's argmax), trade as a learner."""
    del key
    t = params.trade.trade
    rows = kind.start + jnp.arange(kind.count)
    obs = features(state, frame, rows, t.symbol, t.max_position)
    action = actions(params, obs)
    batch = trade_rows(static, kind, world, t, state, frame, learner.wish(params.trade, action))
    return batch, RLPolicyState(action=action)
