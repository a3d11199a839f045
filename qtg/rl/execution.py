"""The execution task: liquidate or acquire ``quantity`` shares within an episode of
``episode`` ticks at the least implementation shortfall, in the reactive market (the rest
of the population trades in the same ticks and reacts to the orders), as in ABIDES-gym's
execution environment; with the TWAP and VWAP baselines and the policy's evaluation.

:class:`ExecutionEnv` is :class:`qtg.rl.env.TradingEnv` (its world, warm-up, opening,
books and market features) with the task's actions, state, observation and reward. Its
one learner (``population.learner``, count 1) is set up from the task so that it can never
over-trade: a seller (``side="sell"``) starts holding ``quantity`` shares and may not go
short (``max_short`` 0); a buyer starts flat with ``max_position = quantity`` and cash for
twice the order at the opening price, above its configured cash. The learner's order size
is twice the TWAP slice ``ceil(quantity / episode)``.

* Actions ``0..levels`` (``levels`` even): action ``a`` trades ``a / levels`` of twice the
  slice on the task's side, as an immediate-or-cancel order ``collar`` through the
  reference (the learner kind's action ``levels -+ a``), so ``levels / 2`` is the TWAP
  pace and ``0`` waits.
* The observation is ``systems.features`` (``SPEC``'s nine features) and the task's
  ``remaining`` (shares still to trade / quantity) and ``time_left`` (ticks left /
  episode): ``systems.policy.spec_for("execution")``, written next to the checkpoints.
* The reward of a step is the implementation shortfall's change against the arrival price
  ``P0`` (the mark, mid where both sides quote, of the learner's symbol at the opening),
  in basis points of ``quantity * P0``: ``(d cash + d shares * P0) / (quantity * P0) *
  1e4``, and at the last tick ``- penalty_bps * left / quantity`` for the shares ``left``
  untraded. An episode's return is minus its shortfall (bp): the cash received (paid)
  beyond the arrival value of the shares sold (bought), less the penalty.
* An episode always runs its ``episode`` ticks (``truncated`` at the last; nothing
  terminates it early: once done, the learner's orders are empty).

The baselines are pure functions of the state (vmap-able, used in the same compiled
rollouts as the policy): :meth:`ExecutionEnv.twap` trades each tick what brings the
executed shares to the straight line ``quantity * (t + 1) / episode`` (the TWAP pace when
every order fills; a partial fill is made up the next tick, the rest at the last tick);
:meth:`ExecutionEnv.vwap` tracks the market's volume instead: after tick ``t`` it aims at
the fraction ``(V_t + v) / (v * episode)`` of the quantity (all of it at the last tick),
where ``V_t`` is the volume the rest of the market traded so far in the episode and ``v``
its expected volume per tick (``expected_volume``, measured by :meth:`calibrate` over
episodes in which the learner waits; a flat profile, as the simulated market has no
intraday season). It trades ahead of TWAP when the market is busier than expected and
behind it when quieter, but never further behind than the largest action can still make
up in the ticks left. Both are capped by the largest action, so unfilled orders late in
the episode pay the penalty.

:func:`evaluate` runs a policy and both baselines over held-out seeds in the environment
itself (vmapped episodes, one compiled program), ``python -m qtg.evaluate`` on an
execution policy.

Usage::

    cfg = qtg.rl.config.load(["env=execution", "env.side=buy", "env.quantity=2000"])
    env = ExecutionEnv.from_config(cfg)
    params = env.calibrate(env.default_params)
    obs, state = env.reset(jax.random.key(0), params)
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state,
                                                               env.twap(state, params), params)
    result = evaluate("outputs/train/execution", [], seeds=10)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment

from components.money import SCALE
from components.world import WorldState
from qtg.core.config import Config, ConfigError
from qtg.rl.config import SIDES
from qtg.rl.env import EnvParams, TradingEnv, evaluate_task, play, trajectories_of
from systems import measure
from systems.policy import act, spec_for
from systems.strategies import learner

TASK = "execution"
SPEC = spec_for(TASK)
"""The observation: ``systems.features.SPEC`` then ``remaining`` and ``time_left``."""
HOLD, POLICY, TWAP, VWAP = range(4)
STRATEGIES = {"policy": POLICY, "twap": TWAP, "vwap": VWAP}
"""The evaluation's rows: name -> the strategy :meth:`ExecutionEnv.episodes` runs."""
ROWS = tuple(STRATEGIES)
METRICS = ("shortfall_bps", "executed", "penalty_bps")


@struct.dataclass
class ExecState(environment.EnvState):
    world: WorldState
    volume: jax.Array  # f64[L] shares the rest of the market traded in the episode so far


@struct.dataclass
class ExecParams(EnvParams):
    arrival: jax.Array = None  # f64[L] the arrival price: the learner's symbol's mark at the opening, currency
    expected_volume: jax.Array = None  # f64[L] the rest of the market's shares per tick (0: VWAP is TWAP)


def task_config(cfg: Config, side: str, quantity: int, episode: int, levels: int) -> Config:
    """``cfg`` with its learner set up for the task: one agent, order size twice the TWAP
    slice, ``levels`` sizes; a seller holding ``quantity`` shares, long only; a buyer flat
    with ``max_position = quantity`` and cash for twice the order at the opening price."""
    n = cfg.population.get(learner.KIND)
    if n is None or n.count != 1:
        raise ConfigError(f"population.{learner.KIND}.count: the execution task has exactly one learner, "
                          f"got {0 if n is None else n.count}")
    if side not in SIDES:
        raise ConfigError(f"env.side: unknown side '{side}'; allowed: {', '.join(SIDES)}")
    if quantity < 1:
        raise ConfigError(f"env.quantity: must be at least 1, got {quantity}")
    if levels < 2 or levels % 2:
        raise ConfigError(f"env.levels: must be even and at least 2 (levels / 2 is the TWAP pace), got {levels}")
    size = 2 * -(-quantity // episode)
    price = float(np.max(cfg.market.opening_prices())) / SCALE
    sell = side == "sell"
    own = dataclasses.replace(n, levels=int(levels), size=[size, size], max_position=[quantity, quantity],
                              shares=quantity if sell else 0, max_short=0,
                              cash=n.cash if sell else n.cash + 2.0 * quantity * price)
    return dataclasses.replace(cfg, population={**cfg.population, learner.KIND: own})


class ExecutionEnv(TradingEnv):
    """Sell (``side="sell"``) or buy ``quantity`` shares within ``episode`` ticks; actions
    ``0..levels`` trade ``a / levels`` of twice the TWAP slice; the reward is the change
    of the implementation shortfall in basis points, with ``penalty_bps`` per whole quantity
    left at the end (see the module doc)."""

    OBSERVATION = SPEC

    def __init__(self, cfg: Config, capacity: int | None = None, warmup: int = 30, episode: int = 100,
                 side: str = "sell", quantity: int = 5000, levels: int = 4, penalty_bps: float = 500.0):
        self.side, self.quantity, self.penalty_bps = side, int(quantity), float(penalty_bps)
        self.sign = 1 if side == "buy" else -1
        cfg = task_config(cfg, side, int(quantity), int(episode), int(levels))
        super().__init__(cfg, capacity, warmup, episode)
        self.size = int(cfg.population[learner.KIND].size[0])  # the largest action's shares
        base = self._params
        arrival = (measure.marks(base.opening)[self._symbols(base)] / SCALE).astype(jnp.float64)
        self._params = ExecParams(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                                  arrival=arrival, expected_volume=jnp.zeros_like(arrival))
        self._episodes = jax.jit(self._run)

    @classmethod
    def from_config(cls, cfg) -> ExecutionEnv:
        """The environment of a training config (``qtg.rl.config.RLConfig``)."""
        e = cfg.env
        return cls(cfg, warmup=e.warmup, episode=e.episode, side=e.side, quantity=e.quantity, levels=e.levels,
                   penalty_bps=e.penalty_bps)

    @property
    def name(self) -> str:
        return "qtg-execution"

    @property
    def num_actions(self) -> int:
        return self.levels + 1

    @property
    def hold_action(self) -> int:
        """Action 0: trade nothing this tick."""
        return 0

    # -- the pure functions -------------------------------------------------------------

    def remaining(self, world: WorldState, params: ExecParams) -> jax.Array:
        """Shares each learner still has to trade. i64[L]"""
        done = self.sign * (self._held(world, params) - params.opening_held)
        return jnp.maximum(self.quantity - done, 0)

    def observe_all(self, state: ExecState, params: ExecParams | None = None) -> jax.Array:
        """``systems.features`` and the task's ``remaining`` and ``time_left``. f32[L, F]"""
        params = self.default_params if params is None else params
        market = self._observe(state.world, params)
        left = self.remaining(state.world, params) / self.quantity
        steps = params.max_steps_in_episode
        time_left = jnp.broadcast_to((steps - state.time) / steps, left.shape)
        task = jnp.clip(jnp.stack([left, time_left], axis=1), 0.0, 1.0)
        return jnp.concatenate([market, task.astype(jnp.float32)], axis=1)

    def reset_all(self, key: jax.Array, params: ExecParams) -> tuple[jax.Array, ExecState]:
        """A new episode from the opening, its future drawn from ``key``: f32[L, F], state."""
        state = ExecState(time=jnp.int32(0), world=params.opening.replace(key=key),
                          volume=jnp.zeros_like(params.arrival))
        task = jnp.ones((params.opening_obs.shape[0], 2), jnp.float32)  # all left, all the time
        return jnp.concatenate([params.opening_obs, task], axis=1), state

    def step_all(self, state: ExecState, action: jax.Array, params: ExecParams):
        """One tick with every learner's action (i32[L] in ``0..levels``): ``(obs f32[L, F],
        state, reward f32[L], info)`` (no reset)."""
        a = jnp.clip(jnp.asarray(action, jnp.int32), 0, self.levels)
        before = state.world
        world, out = self._tick(learner.with_actions(before, self.levels + self.sign * a), params)
        rows = self._rows()
        d_cash = ((world.wallet.cash[rows] - before.wallet.cash[rows]) / SCALE).astype(jnp.float64)
        d_shares = (self._held(world, params) - self._held(before, params)).astype(jnp.float64)
        reward = (d_cash + d_shares * params.arrival) / (self.quantity * params.arrival) * 1e4
        time = state.time + 1
        left = self.remaining(world, params)
        penalty = jnp.where(time >= params.max_steps_in_episode, self.penalty_bps * left / self.quantity, 0.0)
        others = out.volume[self._symbols(params)].astype(jnp.float64) - jnp.abs(d_shares)
        state = ExecState(time=time, world=world, volume=state.volume + others)
        info = {"executed": (self.quantity - left) / self.quantity, "penalty_bps": penalty, "volume": out.volume.sum(),
                "fills": out.fills, "book_full": out.book_full}
        return self.observe_all(state, params), state, (reward - penalty).astype(jnp.float32), info

    def step_env(self, key: jax.Array, state: ExecState, action: Any, params: ExecParams):
        del key  # the world draws from its own key (set at reset)
        obs, state, reward, info = self.step_all(state, action, params)
        info = {**info, "executed": info["executed"][0], "penalty_bps": info["penalty_bps"][0]}
        return obs[0], state, reward[0], self.is_terminated(state, params), info

    # -- the baselines ------------------------------------------------------------------

    def toward(self, state: ExecState, params: ExecParams, target: jax.Array) -> jax.Array:
        """The first learner's action whose trade comes nearest to bringing its executed
        shares to ``target`` after this tick (0 when ahead of it). i32[]"""
        done = self.quantity - self.remaining(state.world, params)[0]
        want = jnp.maximum(target - done, 0).astype(jnp.float64)
        return jnp.clip(jnp.round(want * self.levels / self.size), 0, self.levels).astype(jnp.int32)

    def twap(self, state: ExecState, params: ExecParams) -> jax.Array:
        """TWAP: toward ``quantity * (t + 1) // episode`` executed after tick ``t``. i32[]"""
        steps = params.max_steps_in_episode
        return self.toward(state, params, self.quantity * (state.time.astype(jnp.int64) + 1) // steps)

    def vwap(self, state: ExecState, params: ExecParams) -> jax.Array:
        """VWAP: toward the market's volume fraction ``(V_t + v) / (v * episode)`` of the
        quantity (TWAP's line while ``expected_volume`` is 0), and never behind what the
        largest action can still finish in the ticks left. i32[]"""
        v, steps = params.expected_volume[0], params.max_steps_in_episode
        frac = jnp.where(v > 0, (state.volume[0] + v) / jnp.where(v > 0, v * steps, 1.0), (state.time + 1.0) / steps)
        target = jnp.floor(self.quantity * jnp.minimum(frac, 1.0)).astype(jnp.int64)
        floor = self.quantity - (steps - state.time.astype(jnp.int64) - 1) * self.size
        return self.toward(state, params, jnp.maximum(target, floor))

    # -- whole episodes -----------------------------------------------------------------

    def _run(self, params: ExecParams, keys: jax.Array, which: jax.Array, layers):
        def choose(obs, state):
            return jnp.stack([jnp.int32(0), act(layers, obs), self.twap(state, params), self.vwap(state, params)])[which]

        def record(state, reward, info, action):
            m = state.world.market
            return {"action": action, "reward": reward, "executed": info["executed"], "penalty_bps": info["penalty_bps"],
                    "volume": state.volume[0], "held": self._held(state.world, params)[0], "bid": m.bid[0],
                    "ask": m.ask[0]}

        return play(self, params, keys, choose, record)

    def trajectories(self, params: ExecParams, keys: jax.Array, which: int, layers=None):
        """Whole episodes from the opening, one per key (vmapped; one compiled program per
        number of keys and policy shape), with the strategy ``which``: :data:`HOLD` (wait),
        :data:`POLICY` (the argmax of ``layers``), :data:`TWAP` or :data:`VWAP`. ``(ticks,
        last)``: per episode and tick [E, T] its ``action``, ``reward``, ``executed``
        (fraction of the quantity), ``penalty_bps``, ``volume`` (the rest of the market's,
        so far), ``held`` (the learner's shares), ``bid`` and ``ask`` after it, as NumPy;
        and each episode's last state (stacked)."""
        return trajectories_of(self, self._episodes, params, keys, which, layers)

    def episodes(self, params: ExecParams, keys: jax.Array, which: int, layers=None) -> dict[str, np.ndarray]:
        """:meth:`trajectories` summed up per episode: ``shortfall_bps`` (minus the return,
        the penalty included), ``executed`` (fraction of the quantity), ``penalty_bps`` and
        ``volume_per_tick`` (the rest of the market's). f64[E] each."""
        t, _ = self.trajectories(params, keys, which, layers)
        return {"shortfall_bps": -t["reward"].astype(np.float64).sum(axis=1), "executed": t["executed"][:, -1],
                "penalty_bps": t["penalty_bps"][:, -1], "volume_per_tick": t["volume"][:, -1] / self.episode}

    def calibrate(self, params: ExecParams, key: jax.Array | None = None, episodes: int = 16,
                  layers=None) -> ExecParams:
        """``params`` with ``expected_volume``: the rest of the market's mean volume per tick
        over ``episodes`` episodes (keys split from ``key``, default ``key(0)``) in which the
        learner waits, the volume profile the VWAP baseline tracks. ``layers`` and
        ``episodes``: those of the later :meth:`episodes` calls (the same program)."""
        keys = jax.random.split(jax.random.key(0) if key is None else key, episodes)
        v = float(np.mean(self.episodes(params, keys, HOLD, layers)["volume_per_tick"]))
        return params.replace(expected_volume=jnp.full_like(params.arrival, v))


# -- the evaluation (python -m qtg.evaluate on an execution policy) ---------------------


def evaluate(policy: str, overrides: list[str], seeds: int = 10, first_seed: int = 1000, episodes: int = 16) -> dict:
    """The policy, TWAP and VWAP over ``seeds`` held-out seeds (``first_seed`` on): per seed
    the mean of ``episodes`` episodes whose keys are split from ``jax.random.key(seed)``, the
    same episodes for every row; the volume profile from episodes of the build's seed. The
    aggregate (rows, versus), the per-seed values and the setup. ConfigError with one line."""

    params, per_seed, setup = evaluate_task(TASK, ExecutionEnv, policy, overrides, seeds, first_seed, episodes,
                                            STRATEGIES, METRICS, ("side", "quantity", "episode", "warmup", "levels", "penalty_bps"))
    setup |= {"arrival": float(params.arrival[0]), "expected_volume": float(params.expected_volume[0])}
    return {**aggregate(per_seed), "per_seed": per_seed, "setup": setup}


def aggregate(per_seed: list[dict[str, dict[str, float]]]) -> dict:
    """Mean and Student t 95% interval per row and metric; the policy's saving over each
    baseline (the baseline's shortfall less the policy's), paired by seed: ``beats`` when
    its interval is above 0."""
    from qtg.reports.tournament import paired, rows_ci

    return {"rows": rows_ci(per_seed, METRICS), "versus": paired(per_seed, "shortfall_bps", "saving_bps", higher=False)}


COLUMNS = (("shortfall_bps", "shortfall bp", 1.0), ("executed", "executed %", 100.0), ("penalty_bps", "penalty bp", 1.0))
"""The table's and the chart's columns: (metric, label, scale)."""


def table(result: dict) -> str:
    """The rows (shortfall in bp, executed %, penalty in bp; means and 95% intervals) and
    the policy's paired savings."""
    from qtg.reports.tournament import ci_table

    return ci_table(result, COLUMNS, "saving_bps", "shortfall saved, bp")


def chart(result: dict, path, title: str) -> None:
    """Shortfall and executed fraction per row, means with 95% intervals."""
    from qtg.reports.tournament import ci_chart

    ci_chart(result["rows"], COLUMNS[:2], path, title, {"policy": "tab:orange"})
