"""The portfolio task: hold every symbol of the market at continuous target weights, within
the market's position limits and short-selling rules; with the cash, equal-weight and
value baselines and the policy's evaluation.

:class:`PortfolioEnv` is :class:`qtg.rl.env.TradingEnv` (its world, warm-ups, openings,
reward and books) whose learners allocate instead of trading one symbol: they are
``systems.strategies.allocator`` agents, set up from the config's ``population.learner``
entry (its count, cash, starting shares, now in every symbol, per-symbol position limit
``max_position``, short limit ``max_short``, order size ``size`` per symbol and tick,
collar and latency) with the task's ``gross`` and ``band``.

* The action is a vector of target weights in ``[-1, 1]``, one per symbol (a Box; values
  outside are clipped). The allocator scales weights whose absolute values sum to more
  than ``gross`` down to it and trades each symbol toward ``weight * equity / price``
  shares, at most ``size`` shares a tick, long at most ``max_position``, short at most
  ``max_short`` and only where the market allows shorts (a negative weight is otherwise a
  flat position).
* The observation is ``systems.features`` of every symbol, symbol by symbol:
  ``systems.policy.spec_for("portfolio", n_symbols)`` (feature ``value_gap_2`` is symbol
  2's value gap; ``position_s`` its shares over ``max_position``).
* The reward is the trading task's (``reward``: the change of equity in percent of the
  opening equity, less the configured penalties), its inventory and traded value summed
  over the symbols.

The baselines are pure functions of the observation, run in the same compiled rollouts as
the policy: ``cash`` (every weight 0), ``equal_weight`` (``1 / n_symbols`` each, long
only: the market bought and held) and ``value`` (long the symbols trading below their
fair value, in proportion to the gap up to 1%: the fundamentals' view, which the default
market's prices drift toward).

:func:`evaluate` runs a policy and the baselines over held-out seeds in the environment
itself, ``python -m qtg.evaluate`` on a portfolio policy: total return, Sharpe ratio (of
the per-tick returns, over the episode) and maximum drawdown with 95% intervals.

Usage::

    cfg = qtg.rl.config.load(["env=portfolio", "market.symbols=[ACME,BOLT]"])
    env = PortfolioEnv.from_config(cfg)
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    obs, state, reward, terminated, truncated, info = env.step(
        jax.random.key(1), state, jnp.array([0.5, 0.5]), params)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from components.frame import Frame
from components.money import SCALE
from components.schema import allowed, bounds_of
from components.world import WorldState
from qtg.core.config import Config, ConfigError
from qtg.rl.config import EnvConfig, RewardConfig
from qtg.rl.env import EnvParams, TradingEnv, evaluate_task, play, trajectories_of
from systems import measure
from systems.features import SPEC as MARKET
from systems.features import features
from systems.observe import observe_market
from systems.policy import act_continuous, spec_for
from systems.strategies import allocator, learner

TASK = "portfolio"
HOLD, POLICY, EQUAL, VALUE = range(4)
STRATEGIES = {"policy": POLICY, "cash": HOLD, "equal_weight": EQUAL, "value": VALUE}
"""The evaluation's rows: name -> the strategy :meth:`PortfolioEnv.episodes` runs."""
METRICS = ("total_return", "sharpe", "max_drawdown", "turnover", "reward")


def task_config(cfg: Config, gross: float, band: float) -> Config:
    """``cfg`` with its learners allocating: ``population.learner``'s agents (count, cash,
    shares, limits, size, collar, latency) as ``population.allocator`` agents with
    ``gross`` and ``band``; no one-symbol learners."""
    n = cfg.population.get(learner.KIND)
    if n is None or n.count < 1:
        raise ConfigError(f"population.{learner.KIND}.count: the portfolio task needs at least one learner, "
                          f"got {0 if n is None else n.count}")
    bounds = bounds_of(EnvConfig)  # the bounds a config's env.gross and env.band are checked against
    for key, value in (("gross", gross), ("band", band)):
        lo, hi = bounds[key]
        if not lo <= value <= hi:
            raise ConfigError(f"env.{key}: must be {allowed(lo, hi, real=True)}, got {value}")
    own = allocator.Config(count=n.count, size=list(n.size), max_position=list(n.max_position), collar=n.collar,
                           cash=n.cash, shares=n.shares, latency=n.latency, max_short=n.max_short, gross=float(gross),
                           band=float(band))
    population = {**cfg.population, learner.KIND: dataclasses.replace(n, count=0), allocator.KIND: own}
    return dataclasses.replace(cfg, population=population)


class PortfolioEnv(TradingEnv):
    """Every symbol at continuous target weights (see the module doc)."""

    AGENT = allocator

    def __init__(self, cfg: Config, capacity: int | None = None, warmup: int = 30, episode: int = 100,
                 reward: RewardConfig | None = None, openings: int = 1, gross: float = 1.0, band: float = 0.002):
        super().__init__(task_config(cfg, float(gross), float(band)), capacity, warmup, episode, reward, openings)
        self.OBSERVATION = spec_for(TASK, self.static.n_symbols)
        self._episodes = jax.jit(self._run)

    @classmethod
    def from_config(cls, cfg) -> PortfolioEnv:
        """The environment of a training config (``qtg.rl.config.RLConfig``)."""
        e = cfg.env
        return cls(cfg, warmup=e.warmup, episode=e.episode, reward=cfg.reward, openings=e.openings, gross=e.gross,
                   band=e.band)

    @property
    def name(self) -> str:
        return "qtg-portfolio"

    @property
    def num_actions(self) -> int:
        """The action's size: one weight per symbol."""
        return int(self.static.n_symbols)

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.num_actions,), jnp.float32)

    # -- the pure functions -------------------------------------------------------------

    def _held(self, world: WorldState, params: EnvParams) -> jax.Array:
        """Each learner's shares of every symbol. i64[L, S]"""
        return world.wallet.position[self._rows()]

    def _worth(self, world: WorldState, held: jax.Array, params: EnvParams) -> jax.Array:
        return (jnp.abs(held) * (measure.marks(world) / SCALE)[None, :]).sum(axis=1)

    def _set_actions(self, world: WorldState, action: jax.Array) -> WorldState:
        return allocator.with_actions(world, action)

    def _observe(self, world: WorldState, params: EnvParams) -> jax.Array:
        """``systems.features`` of every symbol, symbol by symbol. f32[L, S * 9]"""
        _, frame = observe_market(self.static, params.world, world, Frame(), jax.random.key(0))
        n, s = self.kind.count, self.static.n_symbols
        p = params.world.kinds[allocator.KIND]
        rows = jnp.repeat(self._rows(), s)
        symbols = jnp.tile(jnp.arange(s, dtype=jnp.int32), n)
        obs = features(world, frame, rows, symbols, jnp.repeat(p.trade.max_position, s))
        return obs.reshape(n, s * MARKET.size)

    # -- the baselines ------------------------------------------------------------------

    def equal_weight(self, obs: jax.Array) -> jax.Array:
        """``1 / n_symbols`` in every symbol. f32[S]"""
        return jnp.full(self.num_actions, 1.0 / self.num_actions, jnp.float32)

    def value(self, obs: jax.Array) -> jax.Array:
        """Long the symbols below their fair value: symbol s's weight is ``1 / n_symbols``
        times its value gap ``log(fair / ref)`` in percent, at most that (a symbol 1% or
        more below its fair value is held in full, one at or above it not at all). f32[S]"""
        gap = obs[: self.num_actions * MARKET.size].reshape(self.num_actions, MARKET.size)[:, 0]
        scale = MARKET.features[0].scale / 100.0  # the feature is the gap times its scale
        return (jnp.clip(gap / scale, 0.0, 1.0) / self.num_actions).astype(jnp.float32)

    # -- whole episodes -----------------------------------------------------------------

    def _run(self, params: EnvParams, keys: jax.Array, which: jax.Array, layers):
        def choose(obs, state):
            del state
            return jnp.stack([jnp.zeros(self.num_actions, jnp.float32), act_continuous(layers, obs),
                              self.equal_weight(obs), self.value(obs)])[which]

        def record(state, reward, info, action):
            return {"action": action, "reward": reward, "equity": info["equity"], "traded": info["traded"]}

        ticks, last = play(self, params, keys, choose, record)
        # each episode's equity at the marks before its first step: its opening's
        start = jax.vmap(lambda key: self._equity(self.pick_opening(key, params)[0])[0])(keys)
        return {**ticks, "start": start}, last

    def trajectories(self, params: EnvParams, keys: jax.Array, which: int, layers=None):
        """Whole episodes from the opening, one per key (vmapped; one compiled program per
        number of keys and policy shape), with the strategy ``which``: :data:`HOLD` (all
        cash), :data:`POLICY` (``layers``' outputs clipped), :data:`EQUAL` or :data:`VALUE`.
        ``(ticks, last)``: per episode and tick [E, T] its ``action`` (weights [E, T, S]),
        ``reward``, ``equity`` (at the marks after it) and ``traded`` (value, currency), and
        per episode [E] ``start`` (its equity at the marks at the opening), as NumPy; each
        episode's last state."""
        return trajectories_of(self, self._episodes, params, keys, which, layers)

    def episodes(self, params: EnvParams, keys: jax.Array, which: int, layers=None) -> dict[str, np.ndarray]:
        """:meth:`trajectories` per episode, f64[E] each: ``total_return`` (percent of the
        equity at the opening), ``sharpe`` (mean over standard deviation of the per-tick
        returns, times the square root of the ticks; 0 where they never vary),
        ``max_drawdown`` (percent, the largest fall from a running peak, the opening's
        equity included), ``turnover`` (value traded over the opening's equity) and
        ``reward`` (the return the policy was trained on)."""
        return episode_metrics(*self.trajectories(params, keys, which, layers)[:1])

    def calibrate(self, params: EnvParams, key: jax.Array | None = None, episodes: int = 16,
                  layers=None) -> EnvParams:
        """``params`` unchanged: no baseline of the task needs the market measured."""
        del key, episodes, layers
        return params


def episode_metrics(ticks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:meth:`PortfolioEnv.episodes`'s metrics of its trajectories ``ticks``."""
    start = ticks["start"][:, None].astype(np.float64)
    equity = np.concatenate([start, ticks["equity"].astype(np.float64)], axis=1)  # [E, T + 1]
    steps = np.diff(equity, axis=1) / equity[:, :-1]
    std = steps.std(axis=1)
    sharpe = np.where(std > 1e-12, steps.mean(axis=1) / np.where(std > 1e-12, std, 1.0), 0.0) * np.sqrt(steps.shape[1])
    peak = np.maximum.accumulate(equity, axis=1)
    return {"total_return": (equity[:, -1] / equity[:, 0] - 1.0) * 100.0, "sharpe": sharpe,
            "max_drawdown": ((peak - equity) / peak).max(axis=1) * 100.0,
            "turnover": ticks["traded"].astype(np.float64).sum(axis=1) / equity[:, 0],
            "reward": ticks["reward"].astype(np.float64).sum(axis=1)}


# -- the evaluation (python -m qtg.evaluate on a portfolio policy) ----------------------


def evaluate(policy: str, overrides: list[str], seeds: int = 10, first_seed: int = 1000, episodes: int = 16) -> dict:
    """The policy and the baselines over ``seeds`` held-out seeds (``first_seed`` on): per
    seed the mean of ``episodes`` episodes whose keys are split from
    ``jax.random.key(seed)``, the same episodes for every row. The aggregate (rows, versus),
    the per-seed values and the setup. ConfigError with one line."""
    from qtg.reports.tournament import paired, rows_ci

    keys = ("episode", "warmup", "openings", "gross", "band")
    _, per_seed, setup = evaluate_task(TASK, PortfolioEnv, policy, overrides, seeds, first_seed, episodes,
                                       STRATEGIES, METRICS, keys)
    return {"rows": rows_ci(per_seed, METRICS), "versus": paired(per_seed, "total_return", "advantage_pct"),
            "per_seed": per_seed, "setup": setup}


COLUMNS = (("total_return", "return %", 1.0), ("sharpe", "Sharpe", 1.0), ("max_drawdown", "max drawdown %", 1.0),
           ("turnover", "turnover x", 1.0))
"""The table's and the chart's columns: (metric, label, scale)."""


def table(result: dict) -> str:
    """The rows (means and 95% intervals) and the policy's paired advantage in return."""
    from qtg.reports.tournament import ci_table

    return ci_table(result, COLUMNS, "advantage_pct", "return, %")


def chart(result: dict, path, title: str) -> None:
    """Return, Sharpe and drawdown per row, means with 95% intervals."""
    from qtg.reports.tournament import ci_chart

    ci_chart(result["rows"], COLUMNS[:3], path, title, {"policy": "tab:orange"})
