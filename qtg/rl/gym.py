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

Usage::

    env = GymnasiumEnv(TradingEnv(load_config(["population.learner.count=1"])))
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import jax
import numpy as np

from systems.features import SPEC


class GymnasiumEnv(gymnasium.Env):
    """One environment behind Gymnasium's ``Env`` (see the module doc)."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, env):
        self.env = env
        self.params = env.default_params
        self.observation_space = gymnasium.spaces.Box(-SPEC.high, SPEC.high, (SPEC.size,), np.float32)
        self.action_space = gymnasium.spaces.Discrete(env.num_actions)
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
        if not self.action_space.contains(action):
            raise ValueError(f"action: an integer in [0, {self.action_space.n - 1}], got {action!r}")
        self._key, key = jax.random.split(self._key)
        tick = int(self._state.world.tick) + 1
        obs, self._state, reward, terminated, truncated, info = self.env.step(key, self._state, int(action), self.params)
        terminated, truncated = bool(terminated), bool(truncated)
        if terminated or truncated:
            obs = info["final_observation"]  # the state underneath is already the next episode's
        info = {k: float(info[k]) for k in ("equity", "volume", "fills", "book_full")} | {"tick": tick}
        return np.asarray(obs), float(reward), terminated, truncated, info
