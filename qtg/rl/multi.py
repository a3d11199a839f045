"""PettingZoo's parallel API over a qtg environment: several learners trade the same
reactive market, every one acting in the same tick; NumPy in, NumPy out, for libraries
that speak PettingZoo (RLlib, MARLlib, CleanRL's multi-agent scripts, SuperSuit).

:class:`ParallelMarketEnv` wraps one :class:`qtg.rl.env.TradingEnv` whose population has
``N >= 1`` learners (``population.learner.count``). Its agents are ``learner_0`` ..
``learner_{N-1}``, the learner rows of the agent table in order. ``reset(seed=...)``
starts an episode whose world key comes from the seed (the same seed, the same episode
for the same actions; without a seed, the next key of the wrapper's own sequence, so a
run of resets repeats too); ``step(actions)`` sets every learner's action (an agent left
out of ``actions`` takes the task's ``hold_action``: it holds, trades or quotes nothing;
in the portfolio task, whose actions are weights, every live agent gives one), runs one jitted tick of the whole market
(``TradingEnv.step_all``) and returns per-agent dicts of observations (float32 NumPy),
rewards (Python floats), terminations (never: the market goes on), truncations (every
agent once the episode's ticks are up, after which ``agents`` is empty) and infos. It
compiles the environment's ``reset_all`` and ``step_all`` once and reuses them for every
episode. It passes ``pettingzoo.test.parallel_api_test``.

Usage::

    env = ParallelMarketEnv(TradingEnv(load_config(["population.learner.count=3"])))
    obs, infos = env.reset(seed=0)
    while env.agents:
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        obs, rewards, terminations, truncations, infos = env.step(actions)
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium
import jax
import numpy as np
from pettingzoo import ParallelEnv

from qtg.rl.env import EnvParams, EnvState, TradingEnv
from qtg.rl.gym import action_space, box, checked


class ParallelMarketEnv(ParallelEnv):
    """Every learner of one environment behind PettingZoo's ``ParallelEnv`` (see the
    module doc). ``env_state`` is the environment's state after the last ``reset`` or
    ``step`` (None before the first reset)."""

    metadata: ClassVar[dict] = {"name": "qtg_parallel_market_v0", "render_modes": []}

    def __init__(self, env: TradingEnv, params: EnvParams | None = None):
        self.env = env
        self.params = env.default_params if params is None else params
        self.episode = int(self.params.max_steps_in_episode)  # env.episode for the default params
        self.render_mode = None
        self.possible_agents = [f"learner_{i}" for i in range(env.num_agents)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        # One space object per agent: PettingZoo asks for the same object on every call.
        self.observation_spaces = {a: box(env) for a in self.possible_agents}  # the task's features
        self.action_spaces = {a: action_space(env) for a in self.possible_agents}
        self._continuous = isinstance(self.action_spaces[self.possible_agents[0]], gymnasium.spaces.Box)
        # Compiled once (the params are arguments, not constants baked into the programs).
        self._reset = jax.jit(env.reset_all)
        self._step = jax.jit(env.step_all)
        self._key = jax.random.key(0)  # the sequence of episode keys, restarted by reset(seed=...)
        self.env_state: EnvState | None = None

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
        """A new episode from the environment's opening: every agent's observation and
        info (``{"tick": ...}``). The episode's key is the next of the wrapper's key
        sequence, which ``seed`` restarts from ``jax.random.key(seed)``."""
        del options
        if seed is not None:
            self._key = jax.random.key(int(seed))
        self._key, key = jax.random.split(self._key)
        obs, self.env_state = self._reset(key, self.params)
        self.agents = list(self.possible_agents)
        obs, tick = np.asarray(obs), int(self.env_state.world.tick)
        return ({a: obs[i] for i, a in enumerate(self.agents)}, {a: {"tick": tick} for a in self.agents})

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        """One tick of the market with every live agent's action (an agent missing from
        ``actions`` takes the task's ``hold_action``; weights, the portfolio task's, are
        needed from every live agent): ``(observations, rewards, terminations, truncations,
        infos)``, each keyed by agent. An agent's info holds its ``equity`` (currency) and the
        tick's market-wide ``volume``, ``fills`` and ``book_full``, and the ``tick``."""
        if self.env_state is None or not self.agents:
            raise RuntimeError("call reset() before step() (and after an episode's end)")
        if self._continuous:  # weights: no action holds, so every live agent gives one
            act = np.zeros((len(self.possible_agents), self.env.num_actions), np.float32)
            missing = [a for a in self.agents if a not in actions]
            if missing:
                raise ValueError(f"actions: every agent's weights are needed, missing {missing}")
        else:
            act = np.full(len(self.possible_agents), self.env.hold_action, np.int32)
        for agent, action in actions.items():
            if agent not in self._index:
                raise ValueError(f"actions: no agent {agent!r}; the agents are {self.possible_agents}")
            act[self._index[agent]] = checked(self.action_spaces[agent], action, f"actions[{agent!r}]")
        obs, self.env_state, reward, info = self._step(self.env_state, act, self.params)
        obs, reward, equity = np.asarray(obs), np.asarray(reward), np.asarray(info["equity"])
        market = {k: float(info[k]) for k in ("volume", "fills", "book_full")}
        tick = int(self.env_state.world.tick)
        done = int(self.env_state.time) >= self.episode
        agents = self.agents
        out = (
            {a: obs[self._index[a]] for a in agents},
            {a: float(reward[self._index[a]]) for a in agents},
            dict.fromkeys(agents, False),
            dict.fromkeys(agents, done),
            {a: {"equity": float(equity[self._index[a]]), **market, "tick": tick} for a in agents},
        )
        if done:
            self.agents = []
        return out

    def render(self) -> None:
        """Nothing to draw (``render_modes`` is empty)."""

    def close(self) -> None:
        """Nothing to release."""
