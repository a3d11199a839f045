"""Gymnasium's API over a qtg environment: NumPy in, NumPy out, for libraries that speak
Gymnasium (Stable-Baselines3, CleanRL, RLlib).

:class:`GymnasiumEnv` wraps one :class:`qtg.rl.env.TradingEnv`: ``reset(seed=...)``
starts an episode whose world key comes from the seed (the same seed, the same episode
for the same actions); ``step(action)`` runs one jitted tick of the whole market and
returns ``(observation, reward, terminated, truncated, info)`` as NumPy and Python
values. It runs the environment's own jitted ``reset`` and ``step`` (the programs a
gymnax user's code compiles too); where an episode ends, ``step`` returns its final
observation, and the caller resets (gymnax's auto-reset has already started the next
episode underneath, which ``reset`` replaces). It passes
``gymnasium.utils.env_checker.check_env``.

:class:`GymnasiumVectorEnv` is Gymnasium's ``VectorEnv`` over ``num_envs`` markets that
step as one jitted, vmapped call (the programs PPO's rollouts run): a batch of actions
in, a batch of observations, rewards and ends out, as NumPy. An ended market starts its
next episode in the same step (``metadata["autoreset_mode"]`` is ``SAME_STEP``, gymnax's
auto-reset): the observation returned is the new episode's first, and the ended one's
last is in ``info["final_obs"]`` (masked by ``info["_final_obs"]``).

Usage::

    env = GymnasiumEnv(TradingEnv(load_config(["population.learner.count=1"])))
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

    envs = GymnasiumVectorEnv(TradingEnv(...), num_envs=64)
    obs, info = envs.reset(seed=0)                       # f32[64, F]
    obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import jax
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnax.environments import spaces

GYMNAX_INFO = ("final_observation", "terminated", "truncated", "discount")
"""What gymnax's ``step`` adds to an environment's info (the wrappers return the rest: the
environment's own per-step figures, e.g. equity, volume, fills, book_full)."""


def box(env) -> gymnasium.spaces.Box:
    """Gymnasium's Box of the environment's observation space (its task's features)."""
    space = env.observation_space(env.default_params)
    low, high = (np.broadcast_to(np.asarray(b, np.float32), space.shape) for b in (space.low, space.high))
    return gymnasium.spaces.Box(low, high, space.shape, np.float32)


def action_space(env) -> gymnasium.spaces.Space:
    """Gymnasium's space of one action: Discrete for a discrete task, the Box of a
    continuous one (the portfolio task's weights)."""
    space = env.action_space(env.default_params)
    if isinstance(space, spaces.Box):
        return gymnasium.spaces.Box(float(space.low), float(space.high), space.shape, np.float32)
    return gymnasium.spaces.Discrete(env.num_actions)


def _wanted(space: gymnasium.spaces.Space) -> str:
    """What an action of ``space`` is, for an error line."""
    if isinstance(space, gymnasium.spaces.Box):
        return f"{space.shape[0]} floats in [{space.low[0]:g}, {space.high[0]:g}]"
    return f"an integer in [0, {space.n - 1}]"


def checked(space: gymnasium.spaces.Space, action: Any, what: str):
    """One action of ``space`` as the environment takes it: float32 weights of a Box, a
    Python int of a Discrete; ValueError naming ``what`` and what is allowed when it is
    not in the space."""
    if isinstance(space, gymnasium.spaces.Box):
        action = np.asarray(action, np.float32)
    if not space.contains(action):
        raise ValueError(f"{what}: {_wanted(space)}, got {action!r}")
    return action if isinstance(space, gymnasium.spaces.Box) else int(action)


class GymnasiumEnv(gymnasium.Env):
    """One environment behind Gymnasium's ``Env`` (see the module doc)."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, env):
        self.env = env
        self.params = env.default_params
        self.observation_space = box(env)
        self.action_space = action_space(env)
        self._state = None
        self._key = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        # The world's key from Gymnasium's seeded generator: reset(seed=s) repeats an episode.
        key = jax.random.key(int(self.np_random.integers(0, 2**63 - 1)))
        obs, self._state = self.env.reset(key, self.params)
        self._key = key
        return np.asarray(obs), {"tick": int(self._state.world.tick)}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = checked(self.action_space, action, "action")
        self._key, key = jax.random.split(self._key)
        tick = int(self._state.world.tick) + 1
        obs, self._state, reward, terminated, truncated, info = self.env.step(key, self._state, action, self.params)
        terminated, truncated = bool(terminated), bool(truncated)
        if terminated or truncated:
            obs = info["final_observation"]  # the state underneath is already the next episode's
        info = {k: float(v) for k, v in info.items() if k not in GYMNAX_INFO} | {"tick": tick}
        return np.asarray(obs), float(reward), terminated, truncated, info


class GymnasiumVectorEnv(VectorEnv):
    """``num_envs`` markets behind Gymnasium's ``VectorEnv``, stepped as one vmapped call
    (see the module doc)."""

    metadata: ClassVar[dict] = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env, num_envs: int):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs: at least 1, got {num_envs}")
        self.env = env
        self.params = env.default_params
        self.num_envs = int(num_envs)
        self.single_observation_space = box(env)
        self.single_action_space = action_space(env)
        self._continuous = isinstance(self.single_action_space, gymnasium.spaces.Box)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self._reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
        self._step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
        self._state = None
        self._keys = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Every market starts an episode; ``seed`` (one, or one per market) repeats them."""
        if isinstance(seed, (list, tuple)):
            if len(seed) != self.num_envs:
                raise ValueError(f"seed: one per environment ({self.num_envs}), got {len(seed)}")
            gens = [np.random.default_rng(s) for s in seed]
            self._np_random, self._np_random_seed = gens[0], seed[0]
        else:
            self._np_random, self._np_random_seed = gymnasium.utils.seeding.np_random(seed)
            gens = [self._np_random] * self.num_envs
        keys = jax.numpy.stack([jax.random.key(int(g.integers(0, 2**63 - 1))) for g in gens])
        obs, self._state = self._reset(keys, self.params)
        self._keys = keys  # the steps' keys split from it, as GymnasiumEnv's do
        return np.asarray(obs), {"tick": np.asarray(self._state.world.tick)}

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        actions = np.asarray(actions, np.float32 if self._continuous else None)
        shape = self.action_space.shape
        ok = actions.shape == shape and self.action_space.contains(
            actions if self._continuous else actions.astype(np.int64))
        if not ok:
            raise ValueError(f"actions: {self.num_envs} actions, each {_wanted(self.single_action_space)}, "
                             f"got {actions.tolist()!r}")
        split = jax.vmap(jax.random.split)(self._keys)
        self._keys, keys = split[:, 0], split[:, 1]
        obs, self._state, reward, terminated, truncated, info = self._step(
            keys, self._state, jax.numpy.asarray(actions, jax.numpy.float32 if self._continuous else jax.numpy.int32),
            self.params)
        terminated, truncated = np.asarray(terminated), np.asarray(truncated)
        out = {k: np.asarray(v, np.float64) for k, v in info.items() if k not in GYMNAX_INFO}
        out["tick"] = np.asarray(self._state.world.tick)
        ended = terminated | truncated
        if ended.any():
            final = np.asarray(info["final_observation"])
            out["final_obs"] = np.full(self.num_envs, None, dtype=object)
            for i in np.flatnonzero(ended):
                out["final_obs"][i] = final[i]
            out["_final_obs"] = ended
        return np.asarray(obs), np.asarray(reward, np.float64), terminated, truncated, out
