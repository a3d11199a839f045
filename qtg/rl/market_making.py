"""The market-making task: quote both sides of one symbol in the reactive market, earn the
spread, and carry as little inventory as possible; with the Avellaneda–Stoikov and the
symmetric baselines and the policy's evaluation.

:class:`MarketMakingEnv` is :class:`qtg.rl.env.TradingEnv` (its world, warm-ups, openings,
books and market features) whose learners quote instead of taking: they are
``systems.strategies.quoter`` agents, set up from the config's ``population.learner``
entry (its count, cash, shares, position limit ``max_position`` and short limit
``max_short``) with ``quote_size`` shares a quote, ``levels`` quote levels a side and
``step_bps`` between levels.

* Actions ``0..(levels + 1) ** 2 - 1``: the pair (bid level, ask level) ``(a // (levels +
  1), a % (levels + 1))``; level 0 quotes nothing on that side, level ``l`` quotes ``l *
  step_bps`` from the reference price (the mid). Action 0 quotes nothing at all.
* The observation is ``systems.features`` (``SPEC``'s nine, the position among them) and
  the task's ``time_left`` (ticks left / episode): ``systems.policy.spec_for("market_making")``.
* The reward of a step, in basis points of one quote's value at the episode's opening
  (``quote_size`` times the symbol's mark): the change of the learner's equity (cash plus
  shares at the marks), less ``inventory_bps`` per quote's worth of shares held (long or
  short) after the step, and at the last tick less ``close_bps`` per quote's worth still
  held (what flattening it would cost). ``info["pnl_bps"]`` is the change of equity alone.
* An episode always runs its ``episode`` ticks (``truncated`` at the last).

The baselines are pure functions of the state, vmap-able, run in the same compiled
rollouts as the policy: :meth:`MarketMakingEnv.symmetric` quotes ``levels / 2`` on both
sides whatever its inventory; :meth:`MarketMakingEnv.avellaneda_stoikov` quotes around
Avellaneda and Stoikov's (2008) reservation price with their optimal spread, in units of
the mid and of one quote: with ``q`` the inventory in quotes (shares / quote_size),
``tau`` the ticks left, ``sigma`` the mid's volatility per tick (log; ``sigma``, measured
by :meth:`calibrate` over episodes in which the learner quotes nothing), risk aversion
``gamma`` (``as_gamma``) and order-arrival decay ``k`` (``as_k``, per unit of relative
distance), the reservation price is ``mid * (1 - q * gamma * sigma**2 * tau)`` and the
half-spread ``(gamma * sigma**2 * tau / 2 + ln(1 + gamma / k) / gamma) * mid``; each quote
is put at the level nearest its distance from the mid (at least level 1: never through it).

:func:`evaluate` runs a policy and both baselines over held-out seeds in the environment
itself, ``python -m qtg.evaluate`` on a market-making policy.

Usage::

    cfg = qtg.rl.config.load(["env=market_making"])
    env = MarketMakingEnv.from_config(cfg)
    params = env.calibrate(env.default_params)
    obs, state = env.reset(jax.random.key(0), params)
    obs, state, reward, terminated, truncated, info = env.step(
        jax.random.key(1), state, env.avellaneda_stoikov(state, params), params)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment

from components.money import SCALE
from components.world import WorldState
from qtg.core.config import Config, ConfigError
from qtg.rl.env import EnvParams, TradingEnv, evaluate_task, play, trajectories_of
from systems import measure
from systems.policy import act, spec_for
from systems.strategies import learner, quoter

TASK = "market_making"
SPEC = spec_for(TASK)
"""The observation: ``systems.features.SPEC`` then ``time_left``."""
HOLD, POLICY, SYMMETRIC, AS = range(4)
STRATEGIES = {"policy": POLICY, "symmetric": SYMMETRIC, "avellaneda_stoikov": AS}
"""The evaluation's rows: name -> the strategy :meth:`MarketMakingEnv.episodes` runs."""
ROWS = tuple(STRATEGIES)
METRICS = ("reward", "pnl_bps", "inventory", "traded")


@struct.dataclass
class QuoteState(environment.EnvState):
    world: WorldState
    equity: jax.Array  # f64[L] each learner's equity at the marks after the last step, units (exact: whole or half units)
    notional: jax.Array  # f64[L] one quote's value at the episode's opening (quote_size x mark), currency


@struct.dataclass
class QuoteParams(EnvParams):
    sigma: jax.Array = None  # f64[] the mid's log volatility per tick (Avellaneda-Stoikov's sigma)


def task_config(cfg: Config, quote_size: int, levels: int, step_bps: float) -> Config:
    """``cfg`` with its learners quoting: ``population.learner``'s agents (count, cash,
    shares, limits, latency) as ``population.quoter`` agents quoting ``quote_size`` shares
    at ``levels`` levels a side ``step_bps`` apart; no taking learners."""
    n = cfg.population.get(learner.KIND)
    if n is None or n.count < 1:
        raise ConfigError(f"population.{learner.KIND}.count: the market-making task needs at least one learner, "
                          f"got {0 if n is None else n.count}")
    if quote_size < 1:
        raise ConfigError(f"env.quote_size: must be at least 1, got {quote_size}")
    if levels < 2 or levels % 2:
        raise ConfigError(f"env.levels: must be even and at least 2 (levels / 2 is the symmetric baseline's), "
                          f"got {levels}")
    own = quoter.Config(count=n.count, size=[quote_size, quote_size], max_position=list(n.max_position),
                        cash=n.cash, shares=n.shares, latency=n.latency, levels=int(levels), step=step_bps * 1e-4,
                        max_short=n.max_short)
    population = {**cfg.population, learner.KIND: dataclasses.replace(n, count=0), quoter.KIND: own}
    return dataclasses.replace(cfg, population=population)


class MarketMakingEnv(TradingEnv):
    """Quote both sides of one symbol; actions are pairs of quote levels; the reward is the
    change of equity in basis points of one quote, less inventory and closing penalties
    (see the module doc)."""

    AGENT = quoter
    OBSERVATION = SPEC

    def __init__(self, cfg: Config, capacity: int | None = None, warmup: int = 30, episode: int = 100,
                 openings: int = 1, quote_size: int = 100, levels: int = 4, step_bps: float = 2.0,
                 inventory_bps: float = 0.5, close_bps: float = 5.0, as_gamma: float = 5.0, as_k: float = 5000.0):
        self.quote_size, self.level_step = int(quote_size), float(step_bps) * 1e-4
        self.inventory_bps, self.close_bps = float(inventory_bps), float(close_bps)
        self.as_gamma, self.as_k = float(as_gamma), float(as_k)
        super().__init__(task_config(cfg, int(quote_size), int(levels), float(step_bps)), capacity, warmup, episode,
                         openings=openings)
        base = self._params
        self._params = QuoteParams(**{f.name: getattr(base, f.name) for f in dataclasses.fields(base)},
                                   sigma=jnp.float64(0.0))
        self._episodes = jax.jit(self._run)

    @classmethod
    def from_config(cls, cfg) -> MarketMakingEnv:
        """The environment of a training config (``qtg.rl.config.RLConfig``)."""
        e = cfg.env
        return cls(cfg, warmup=e.warmup, episode=e.episode, openings=e.openings, quote_size=e.quote_size,
                   levels=e.levels, step_bps=e.step_bps, inventory_bps=e.inventory_bps, close_bps=e.close_bps,
                   as_gamma=e.as_gamma, as_k=e.as_k)

    @property
    def name(self) -> str:
        return "qtg-market-making"

    @property
    def num_actions(self) -> int:
        return (self.levels + 1) ** 2

    @property
    def hold_action(self) -> int:
        """Action 0: quote nothing (level 0 on both sides)."""
        return 0

    # -- the pure functions -------------------------------------------------------------

    def _value(self, world: WorldState) -> jax.Array:
        return self._equity(world)  # the task values shares at the marks, whatever reward.mark says

    def _units(self, world: WorldState) -> jax.Array:
        """Each learner's equity at the marks in units, exact (``systems.measure.equity``). f64[L]"""
        return measure.equity(world)[self._rows()].astype(jnp.float64)

    def observe_all(self, state: QuoteState, params: QuoteParams | None = None) -> jax.Array:
        """``systems.features`` and the task's ``time_left``. f32[L, F]"""
        params = self.default_params if params is None else params
        return self._with_time(self._observe(state.world, params), state.time, params)

    def _with_time(self, market: jax.Array, time: jax.Array, params: QuoteParams) -> jax.Array:
        steps = params.max_steps_in_episode
        left = jnp.full((market.shape[0], 1), (steps - time) / steps, jnp.float32)
        return jnp.concatenate([market, jnp.clip(left, 0.0, 1.0)], axis=1)

    def reset_all(self, key: jax.Array, params: QuoteParams) -> tuple[jax.Array, QuoteState]:
        """A new episode from an opening, its future drawn from ``key``: f32[L, F], state."""
        world, obs, _, _ = self.pick_opening(key, params)
        notional = self.quote_size * (measure.marks(world)[self._symbols(params)] / SCALE).astype(jnp.float64)
        state = QuoteState(time=jnp.int32(0), world=world.replace(key=key), equity=self._units(world),
                           notional=notional)
        return self._with_time(obs, jnp.int32(0), params), state

    def step_all(self, state: QuoteState, action: jax.Array, params: QuoteParams):
        """One tick with every learner's action (i32[L]): ``(obs f32[L, F], state, reward
        f32[L], info)`` (no reset)."""
        a = jnp.clip(jnp.asarray(action, jnp.int32), 0, self.num_actions - 1)
        world, out = self._tick(quoter.with_actions(state.world, a), params)
        equity, held = self._units(world), self._held(world, params)
        # the change in exact units first, then one rounding: no equity change, no reward
        pnl = (equity - state.equity) / SCALE / state.notional * 1e4
        quotes = jnp.abs(held).astype(jnp.float64) / self.quote_size
        time = state.time + 1
        last = time >= params.max_steps_in_episode
        penalty = self.inventory_bps * quotes + jnp.where(last, self.close_bps * quotes, 0.0)
        traded = jnp.abs(held - self._held(state.world, params))
        state = QuoteState(time=time, world=world, equity=equity, notional=state.notional)
        info = {"pnl_bps": pnl, "inventory": held, "traded": traded, "equity": equity / SCALE, "volume": out.volume.sum(),
                "fills": out.fills, "book_full": out.book_full}
        return self.observe_all(state, params), state, (pnl - penalty).astype(jnp.float32), info

    def step_env(self, key: jax.Array, state: QuoteState, action: Any, params: QuoteParams):
        del key  # the world draws from its own key (set at reset)
        obs, state, reward, info = self.step_all(state, action, params)
        info = {**info, **{k: info[k][0] for k in ("pnl_bps", "inventory", "traded", "equity")}}
        return obs[0], state, reward[0], self.is_terminated(state, params), info

    # -- the baselines ------------------------------------------------------------------

    def _action(self, params: QuoteParams, bid_level, ask_level) -> jax.Array:
        p = params.world.kinds[quoter.KIND]
        return quoter.action_of(p, jnp.asarray(bid_level)[None], jnp.asarray(ask_level)[None])[0]

    def symmetric(self, state: QuoteState, params: QuoteParams) -> jax.Array:
        """Both sides at ``levels / 2``, whatever the inventory. i32[]"""
        del state
        return self._action(params, self.levels // 2, self.levels // 2)

    def as_distances(self, state: QuoteState, params: QuoteParams) -> tuple[jax.Array, jax.Array]:
        """Avellaneda–Stoikov's bid and ask distances below and above the mid, as fractions
        of it, for the first learner (see the module doc). f64[] each"""
        q = self._held(state.world, params)[0].astype(jnp.float64) / self.quote_size
        tau = (params.max_steps_in_episode - state.time).astype(jnp.float64)
        g, var = self.as_gamma, params.sigma * params.sigma
        half = g * var * tau / 2.0 + math.log1p(g / self.as_k) / g
        skew = q * g * var * tau  # the reservation price's distance below the mid
        return half + skew, half - skew

    def avellaneda_stoikov(self, state: QuoteState, params: QuoteParams) -> jax.Array:
        """The level nearest each of :meth:`as_distances` (1..levels). i32[]"""
        bid, ask = self.as_distances(state, params)

        def level(d):
            return jnp.clip(jnp.round(d / self.level_step), 1, self.levels).astype(jnp.int64)

        return self._action(params, level(bid), level(ask))

    # -- whole episodes -----------------------------------------------------------------

    def _run(self, params: QuoteParams, keys: jax.Array, which: jax.Array, layers):
        def choose(obs, state):
            return jnp.stack([jnp.int32(0), act(layers, obs), self.symmetric(state, params),
                              self.avellaneda_stoikov(state, params)])[which]

        def record(state, reward, info, action):
            m = state.world.market
            return {"action": action, "reward": reward, "pnl_bps": info["pnl_bps"], "inventory": info["inventory"],
                    "traded": info["traded"], "bid": m.bid[0], "ask": m.ask[0]}

        return play(self, params, keys, choose, record)

    def trajectories(self, params: QuoteParams, keys: jax.Array, which: int, layers=None):
        """Whole episodes from the opening, one per key (vmapped; one compiled program per
        number of keys and policy shape), with the strategy ``which``: :data:`HOLD` (no
        quotes), :data:`POLICY` (the argmax of ``layers``), :data:`SYMMETRIC` or :data:`AS`.
        ``(ticks, last)``: per episode and tick [E, T] its ``action``, ``reward``,
        ``pnl_bps``, ``inventory`` (shares), ``traded`` (the change of the position), and
        the market's ``bid`` and ``ask`` after it, as NumPy; each episode's last state."""
        return trajectories_of(self, self._episodes, params, keys, which, layers)

    def episodes(self, params: QuoteParams, keys: jax.Array, which: int, layers=None) -> dict[str, np.ndarray]:
        """:meth:`trajectories` per episode: ``reward`` (the return, bp), ``pnl_bps`` (the
        change of equity, bp of one quote), ``inventory`` (the mean of |shares| / quote_size
        over the ticks) and ``traded`` (shares the position moved, / quote_size). f64[E] each;
        and ``mid`` f64[E, T] (the mid after each tick, 0 where a side is empty)."""
        t, _ = self.trajectories(params, keys, which, layers)
        bid, ask = t["bid"].astype(np.float64), t["ask"].astype(np.float64)
        q = float(self.quote_size)
        return {"reward": t["reward"].astype(np.float64).sum(axis=1), "pnl_bps": t["pnl_bps"].sum(axis=1),
                "inventory": np.abs(t["inventory"]).mean(axis=1) / q, "traded": t["traded"].sum(axis=1) / q,
                "mid": np.where((bid > 0) & (ask > 0), (bid + ask) / 2.0, 0.0)}

    def calibrate(self, params: QuoteParams, key: jax.Array | None = None, episodes: int = 16,
                  layers=None) -> QuoteParams:
        """``params`` with ``sigma``: the standard deviation of the mid's log change per tick
        over ``episodes`` episodes (keys split from ``key``, default ``key(0)``) in which the
        learner quotes nothing, Avellaneda–Stoikov's volatility. ``layers`` and
        ``episodes``: those of the later :meth:`episodes` calls (the same program)."""
        keys = jax.random.split(jax.random.key(0) if key is None else key, episodes)
        mid = self.episodes(params, keys, HOLD, layers)["mid"]
        both = (mid[:, 1:] > 0) & (mid[:, :-1] > 0)
        change = np.log(np.where(both, mid[:, 1:], 1.0) / np.where(both, mid[:, :-1], 1.0))[both]
        return params.replace(sigma=jnp.float64(float(np.std(change)) if change.size > 1 else 0.0))


# -- the evaluation (python -m qtg.evaluate on a market-making policy) ------------------


def evaluate(policy: str, overrides: list[str], seeds: int = 10, first_seed: int = 1000, episodes: int = 16) -> dict:
    """The policy and both baselines over ``seeds`` held-out seeds (``first_seed`` on): per
    seed the mean of ``episodes`` episodes whose keys are split from ``jax.random.key(seed)``,
    the same episodes for every row; sigma from episodes of the build's seed. The aggregate
    (rows, versus), the per-seed values and the setup. ConfigError with one line."""
    from qtg.reports.tournament import paired, rows_ci

    keys = ("episode", "warmup", "openings", "quote_size", "levels", "step_bps", "inventory_bps", "close_bps",
            "as_gamma", "as_k")
    params, per_seed, setup = evaluate_task(TASK, MarketMakingEnv, policy, overrides, seeds, first_seed, episodes,
                                            STRATEGIES, METRICS, keys)
    return {"rows": rows_ci(per_seed, METRICS), "versus": paired(per_seed, "reward", "advantage_bps"),
            "per_seed": per_seed, "setup": setup | {"sigma": float(params.sigma)}}


COLUMNS = (("reward", "return bp", 1.0), ("pnl_bps", "P&L bp", 1.0), ("inventory", "|inventory| quotes", 1.0),
           ("traded", "traded quotes", 1.0))
"""The table's and the chart's columns: (metric, label, scale)."""


def table(result: dict) -> str:
    """The rows (means and 95% intervals) and the policy's paired advantage in return."""
    from qtg.reports.tournament import ci_table

    return ci_table(result, COLUMNS, "advantage_bps", "return, bp")


def chart(result: dict, path, title: str) -> None:
    """Return, P&L and inventory per row, means with 95% intervals."""
    from qtg.reports.tournament import ci_chart

    ci_chart(result["rows"], COLUMNS[:3], path, title, {"policy": "tab:orange"})
