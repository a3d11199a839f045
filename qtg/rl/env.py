"""The reactive market as gymnax environments: a learner is a row of the agent table and
the rest of the population keeps trading in the same tick.

An environment is built from a config whose population has learners
(``population.learner``, ``systems.strategies.learner``). Building it builds the world,
gives it books of ``capacity`` orders a side, and runs ``warmup`` ticks so the book is
two-sided and the indicators are ready: that world is the opening of every episode
(:class:`EnvParams` ``.opening``). With ``openings`` > 1 the warm-up runs that many times
from the build, each with its own key, and each episode starts from one of those
openings, drawn by its reset key (``opening`` and its observation, equity and holdings
then have a leading axis of ``openings``): a policy then learns from many states of the
market, not the one state a single opening is. ``reset`` starts an episode from it with the reset key
as the world's key, so every episode draws its own future; ``step`` sets the learners'
actions, runs one tick of the whole market on the device (``qtg.core.rollout.step``) and
returns the new observation (``systems.features``), the reward, ``terminated`` (never:
the market goes on) and ``truncated`` (the episode's ticks are up). Both are pure
and jit/vmap-able, with gymnax's auto-reset, and there is no Python branch on traced
values: ``jax.vmap(env.step, in_axes=(0, 0, 0, None))`` runs many markets at once.

The reward is configurable (``qtg.rl.config.RewardConfig``, Hydra group ``reward``): the
change of equity, less penalties for inventory, drawdown, variance and transaction costs,
plus a terminal Sharpe ratio; equity values the learner's shares at the marks, or at the
fundamentals' fair value (``reward.mark=fair``; ``info["equity"]`` is always at the
marks, and ``info["traded"]`` is the value the step traded at the marks, currency). ``step_all`` steps every learner (actions ``[L]``, returns
observations ``[L, F]`` and rewards ``[L]``) for the multi-agent wrappers; ``step`` is the
first learner's view, for single-agent code.

Usage::

    env = TradingEnv(load_config(["population.learner.count=1"]), warmup=30, episode=100)
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    obs, state, reward, terminated, truncated, info = env.step(jax.random.key(1), state, 2, params)
"""

from __future__ import annotations

import copy
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from components.frame import Frame
from components.money import SCALE
from components.orders import STP
from components.world import WorldParams, WorldState
from qtg.core import rollout as ro
from qtg.core.config import Config, ConfigError
from qtg.core.world import build_world
from qtg.rl.config import RewardConfig
from systems import measure
from systems.features import SPEC, features
from systems.observe import observe_market
from systems.strategies import learner


@struct.dataclass
class EnvState(environment.EnvState):
    world: WorldState
    equity: jax.Array  # f64[L] each learner's equity after the last step, valued as reward.mark says, currency
    opening_equity: jax.Array  # f64[L] at the episode's start
    peak: jax.Array  # f64[L] the highest equity of the episode so far, currency
    held: jax.Array  # i64[L] each learner's shares of its symbol after the last step ([L, S] in the portfolio task)
    pnl_sum: jax.Array  # f64[L] the episode's step changes of equity (percent), summed
    pnl_sq: jax.Array  # f64[L] and their squares, summed


@struct.dataclass
class EnvParams(environment.EnvParams):
    world: WorldParams = None
    opening: WorldState = None  # the world every episode starts from ([K, ...] with K > 1 openings)
    opening_obs: jax.Array = None  # f32[L, F] ([K, L, F]) every learner's observation of it
    opening_equity: jax.Array = None  # f64[L] ([K, L]) every learner's equity in it (as reward.mark values it), currency
    opening_held: jax.Array = None  # i64[L] ([K, L]) every learner's shares of its symbol in it


class TradingEnv(environment.Environment):
    """One symbol, discrete actions: the learner's action ``a`` in ``[0, 2 * levels]``
    trades ``(a - levels) / levels`` of its order size (``levels`` holds); the episode is
    ``episode`` ticks; the reward (``reward``, by default the change of equity alone) is in
    percent of the learner's equity at the episode's start. The books hold ``capacity``
    orders a side (default ``engine.capacity``). ``AGENT``: the kind module of the learner
    rows (``learner``; a subclass may trade as another external kind); ``OBSERVATION``: the
    observation spec (a task appends its features, ``systems.policy.spec_for``)."""

    AGENT = learner
    OBSERVATION = SPEC

    def __init__(self, cfg: Config, capacity: int | None = None, warmup: int = 30, episode: int = 100,
                 reward: RewardConfig | None = None, openings: int = 1):
        agent = self.AGENT.KIND
        n = cfg.population.get(agent)
        if n is None or n.count < 1:
            raise ConfigError(f"population.{agent}.count: an environment needs at least one learner, "
                              f"got {0 if n is None else n.count}")
        world = build_world(cfg)
        self.static = world.static
        self.kind = world.static.kind(agent)
        self.stp = int(STP[cfg.engine.stp.upper()])
        self.levels = int(getattr(cfg.population[agent], "levels", 0))  # a discrete task's
        self.episode = int(episode)
        self.reward = RewardConfig() if reward is None else reward
        capacity = cfg.engine.capacity if capacity is None else capacity
        state = ro.with_books(world.state, world.static, capacity)
        self.openings = int(openings)
        if self.openings > 1:  # the warm-up from the build, once per key: K openings
            keys = jax.random.split(jax.random.fold_in(state.key, 1), self.openings)
            states = jax.vmap(lambda k: state.replace(key=k))(keys)
            ticks, stp = int(warmup), self.stp
            opening, _ = jax.jit(jax.vmap(lambda p, s: ro.rollout(world.static, p, s, ticks, stp, ro.MARKETS),
                                          in_axes=(None, 0), axis_name=ro.MARKETS))(world.params, states)
        elif warmup:
            run = jax.jit(ro.rollout, static_argnums=(0, 3, 4))
            opening, _ = run(world.static, world.params, state, int(warmup), self.stp)
        else:
            opening = state
        # The opening's observation, equity and holdings are the same for every episode (its
        # key changes only the future): computed once here, so a reset, which gymnax's
        # auto-reset computes at every step, costs nothing.
        params = EnvParams(max_steps_in_episode=self.episode, world=world.params, opening=opening)
        obs, equity, held = self._openings_of(params)
        self._params = params.replace(opening_obs=obs, opening_equity=equity, opening_held=held)

    def with_reward(self, reward: RewardConfig) -> TradingEnv:
        """The same market (world, warm-up, episode) with another reward: no rebuild."""
        env = copy.copy(self)
        env.reward = reward
        obs, equity, held = env._openings_of(self._params)
        env._params = self._params.replace(opening_obs=obs, opening_equity=equity, opening_held=held)
        return env

    @classmethod
    def from_config(cls, cfg) -> TradingEnv:
        """The environment of a training config (``qtg.rl.config.RLConfig``)."""
        return cls(cfg, warmup=cfg.env.warmup, episode=cfg.env.episode, reward=cfg.reward, openings=cfg.env.openings)

    @property
    def default_params(self) -> EnvParams:
        return self._params

    @property
    def name(self) -> str:
        return "qtg-trading"

    @property
    def num_agents(self) -> int:
        return int(self.kind.count)

    @property
    def num_actions(self) -> int:
        return 2 * self.levels + 1

    @property
    def hold_action(self) -> int:
        """The action that sends nothing new: ``levels`` (hold), what an agent the
        multi-agent wrapper is given no action for takes."""
        return self.levels

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: EnvParams | None = None) -> spaces.Box:
        spec = self.OBSERVATION
        return spaces.Box(-spec.high, spec.high, (spec.size,), jnp.float32)

    # -- the pure functions -------------------------------------------------------------

    def _rows(self) -> jax.Array:
        return self.kind.start + jnp.arange(self.kind.count)

    def _symbols(self, params: EnvParams) -> jax.Array:
        return params.world.kinds[self.AGENT.KIND].trade.symbol

    def _equity(self, world: WorldState) -> jax.Array:
        """Each learner's cash plus its shares at the marks (``systems.measure.equity``),
        currency. f64[L]"""
        # astype: a strongly typed f64 (a weak type would give a restored state another
        # signature, and its programs another compilation).
        return (measure.equity(world)[self._rows()] / SCALE).astype(jnp.float64)

    def _value(self, world: WorldState) -> jax.Array:
        """Each learner's equity as the reward values it (``reward.mark``): at the marks
        (:meth:`_equity`), or its shares at the fundamentals' fair value (``fair``, ``edge``).
        f64[L] currency"""
        if self.reward.mark == "market":
            return self._equity(world)
        return self._at_fair(world, world.fundamentals.fair)

    def _at_fair(self, world: WorldState, fair: jax.Array) -> jax.Array:
        """Each learner's cash and shares in ``world`` valued at ``fair`` (f64[S], the
        fundamentals' fair values: ``world``'s own, or with ``reward.mark=edge`` those after
        the step, which values the holdings before it without marking them again).
        f64[L] currency"""
        rows = self._rows()
        shares = world.wallet.position[rows].astype(jnp.float64) @ fair
        return ((world.wallet.cash[rows] + shares) / SCALE).astype(jnp.float64)

    def _held(self, world: WorldState, params: EnvParams) -> jax.Array:
        """Each learner's shares of its symbol. i64[L]"""
        return world.wallet.position[self._rows(), self._symbols(params)]

    def _worth(self, world: WorldState, held: jax.Array, params: EnvParams) -> jax.Array:
        """The value at the marks of ``held`` shares (:meth:`_held`'s shape), long or short
        alike, per learner. f64[L] currency"""
        return jnp.abs(held) * (measure.marks(world)[self._symbols(params)] / SCALE)

    def _tick(self, world: WorldState, params: EnvParams):
        """One tick of the market from ``world``: ``(world, outputs)``. The match runs in
        arrival order whatever the market (``qtg.core.rollout.step``'s ``in_order``): an
        environment's step is vmapped by code it does not own, and under a ``vmap`` without
        a named axis the by-symbol form of a market of several symbols runs both forms."""
        return ro.step(self.static, params.world, world, self.stp, in_order=True)

    def _set_actions(self, world: WorldState, action: jax.Array) -> WorldState:
        """``world`` with every learner's action (i32[L], or one for all) in force."""
        return learner.with_actions(world, jnp.clip(jnp.asarray(action, jnp.int32), 0, 2 * self.levels))

    def _observe(self, world: WorldState, params: EnvParams) -> jax.Array:
        _, frame = observe_market(self.static, params.world, world, Frame(), jax.random.key(0))
        p = params.world.kinds[self.AGENT.KIND]
        return features(world, frame, self._rows(), p.trade.symbol, p.trade.max_position)

    def observe_all(self, state: EnvState, params: EnvParams | None = None) -> jax.Array:
        """Every learner's observation (``systems.features``). f32[L, F]"""
        return self._observe(state.world, self.default_params if params is None else params)

    def get_obs(self, state: EnvState, params: EnvParams | None = None, key=None) -> jax.Array:
        return self.observe_all(state, params)[0]

    def is_terminated(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Never: an episode ends only when its ticks are up (``is_truncated``)."""
        return jnp.bool_(False)

    def _openings_of(self, params: EnvParams):
        """Every opening's observation, equity and holdings of every learner (computed
        once: a reset, which gymnax's auto-reset computes at every step, then costs nothing)."""
        if self.openings > 1:
            return jax.jit(jax.vmap(lambda world: self._opening(params.replace(opening=world))))(params.opening)
        return jax.jit(self._opening)(params)

    def _opening(self, params: EnvParams):
        """The opening's observation, equity and holdings of every learner."""
        world = params.opening
        return self._observe(world, params), self._value(world), self._held(world, params)

    def reset_all(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        """A new episode from the opening, drawing its future from ``key``: every
        learner's observation f32[L, F] and the state."""
        world, obs, equity, held = self.pick_opening(key, params)
        zero = jnp.zeros_like(equity)
        state = EnvState(time=jnp.int32(0), world=world.replace(key=key), equity=equity,
                         opening_equity=equity, peak=equity, held=held, pnl_sum=zero, pnl_sq=zero)
        return obs, state

    def pick_opening(self, key: jax.Array, params: EnvParams):
        """The opening an episode of reset key ``key`` starts from, drawn uniformly among
        the ``openings`` (the one there is, without a draw): its world, and every learner's
        observation, equity and holdings in it."""
        if self.openings == 1:
            return params.opening, params.opening_obs, params.opening_equity, params.opening_held
        i = jax.random.randint(jax.random.fold_in(key, 1), (), 0, self.openings)
        world = jax.tree.map(lambda x: x[i], params.opening)
        return world, params.opening_obs[i], params.opening_equity[i], params.opening_held[i]

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[jax.Array, EnvState]:
        obs, state = self.reset_all(key, params)
        return obs[0], state

    def step_all(self, state: EnvState, action: jax.Array, params: EnvParams):
        """One tick of the market with every learner's action (i32[L], or one for all):
        ``(obs f32[L, F], state, reward f32[L], info)`` (no reset)."""
        world, out = self._tick(self._set_actions(state.world, action), params)
        state, reward, traded = self.settle(state, world, params)
        # book_full: orders refused for a full book side this tick (never silent; 0 while the
        # capacity suffices, and then the tick trades exactly as engine=fast would).
        info = {"equity": self._equity(world), "traded": traded, "volume": out.volume.sum(), "fills": out.fills,
                "book_full": out.book_full}
        return self.observe_all(state, params), state, reward, info

    def settle(self, state: EnvState, world: WorldState, params: EnvParams):
        """What a tick from ``state`` to ``world`` (the market after it) gives every
        learner: ``(state, reward f32[L], traded f64[L])``, the state after the step, the
        reward and the value traded at the marks (currency). ``step_all`` is the tick
        then this; the reward is a function of the two states alone."""
        equity, held = self._value(world), self._held(world, params)
        r, base = self.reward, state.opening_equity / 100.0  # a percent of the opening equity, currency
        # edge: counted from the holdings before the step at the fair value after it, so the
        # change is only what the step's trades made against the fair value
        before = self._at_fair(state.world, world.fundamentals.fair) if r.mark == "edge" else state.equity
        pnl = (equity - before) / base
        peak = jnp.maximum(state.peak, equity)
        drawdown_growth = jnp.maximum((peak - equity) - (state.peak - state.equity), 0.0) / base
        inventory = self._worth(world, held, params) / base
        traded_value = self._worth(world, held - state.held, params)  # currency
        traded = traded_value / base
        pnl_sum, pnl_sq = state.pnl_sum + pnl, state.pnl_sq + pnl * pnl
        steps = (state.time + 1).astype(jnp.float64)
        mean = pnl_sum / steps
        sharpe = mean / jnp.sqrt(jnp.maximum(pnl_sq / steps - mean * mean, 0.0) + 1e-12)
        last = (state.time + 1) >= params.max_steps_in_episode
        reward = (r.pnl * pnl - r.inventory * inventory - r.drawdown * drawdown_growth - r.variance * pnl * pnl
                  - r.cost_bps * 1e-4 * traded + jnp.where(last, r.sharpe * sharpe, 0.0))
        state = EnvState(time=state.time + 1, world=world, equity=equity, opening_equity=state.opening_equity,
                         peak=peak, held=held, pnl_sum=pnl_sum, pnl_sq=pnl_sq)
        return state, reward.astype(jnp.float32), traded_value

    def step_env(self, key: jax.Array, state: EnvState, action: Any, params: EnvParams):
        del key  # the world draws from its own key (set at reset)
        obs, state, reward, info = self.step_all(state, action, params)
        info = {**info, "equity": info["equity"][0], "traded": info["traded"][0]}
        return obs[0], state, reward[0], self.is_terminated(state, params), info


def play(env: TradingEnv, params: EnvParams, keys: jax.Array, choose, record):
    """Whole episodes of ``env`` from its opening, one per key (vmapped; jit the caller):
    the first learner acts as ``choose(obs, state) -> action`` says. ``(ticks, last)``: per
    episode and tick ``[E, T]`` the dict ``record(state, reward, info, action)`` of the
    state after the step, and each episode's last state (stacked)."""

    def one(key):
        obs, state = env.reset_env(key, params)

        def body(carry, _):
            obs, state = carry
            action = choose(obs, state)
            obs, state, reward, _, info = env.step_env(key, state, action, params)
            return (obs, state), record(state, reward, info, action)

        (_, last), ticks = jax.lax.scan(body, (obs, state), None, length=env.episode)
        return ticks, last

    return jax.vmap(one)(keys)


def compare(env, params, layers, seeds: int, first_seed: int, episodes: int, rows: dict[str, int],
            metrics: tuple[str, ...]) -> list[dict[str, dict[str, float]]]:
    """Per seed (``first_seed`` on) and row (``rows``: name -> the strategy ``env.episodes``
    runs), each metric's mean over the seed's ``episodes`` episodes (keys split from
    ``jax.random.key(seed)``, the same episodes for every row): a task's evaluation."""
    import numpy as np

    keys = jnp.concatenate([jax.random.split(jax.random.key(s), episodes) for s in range(first_seed, first_seed + seeds)])
    runs = {name: env.episodes(params, keys, which, layers) for name, which in rows.items()}
    return [{name: {m: float(np.mean(runs[name][m][i * episodes:(i + 1) * episodes])) for m in metrics}
             for name in rows} for i in range(seeds)]


def task_config(task: str, meta: dict, overrides: list[str]):
    """The training config of a ``task`` policy: ``conf/train.yaml`` with ``env=<task>``, the
    training's command-line overrides (its meta's ``overrides``: the market and population
    it trained in, e.g. ``+experiment=rl_portfolio``), the policy's task settings (its
    meta's ``env``, written by the trainer; a portfolio policy's ``market_symbols`` too)
    and ``overrides``,
    checked (ConfigError with one line)."""
    from qtg.rl.config import load

    env = [f"env.{k}={v}" for k, v in meta.get("env", {}).items() if k != "task"]
    market = [f"market.symbols=[{','.join(meta['market_symbols'])}]"] if meta.get("market_symbols") else []
    return load([f"env={task}", *meta.get("overrides", []), *market, *env, *overrides])


def evaluate_task(task: str, env_class, policy: str, overrides: list[str], seeds: int, first_seed: int, episodes: int,
                  strategies: dict[str, int], metrics: tuple[str, ...], keys: tuple[str, ...]):
    """A task's evaluation up to its own summary: the policy file read (ConfigError with one
    line), its config (:func:`task_config`) and environment (``env_class.from_config``),
    the action count checked, ``env.calibrate`` on ``seeds * episodes`` episodes drawn from
    the build's seed (none a held-out seed's; the comparison's program), then
    :func:`compare`. ``(params, per_seed, setup)``: the calibrated parameters, the
    comparison, and the setup naming the policy, the overrides, the seeds and the config's
    ``env`` settings ``keys``."""
    from qtg.core.config import ConfigError
    from systems.policy import PolicyError, read_policy

    try:
        layers, meta = read_policy(policy)
    except PolicyError as e:
        raise ConfigError(f"policy: {e}") from None
    cfg = task_config(task, meta, overrides)
    env = env_class.from_config(cfg)
    if int(meta.get("actions", 0)) != env.num_actions:
        what = "market.symbols" if task == "portfolio" else "env.levels"
        raise ConfigError(f"{what}: the policy has {meta.get('actions')} actions, this task {env.num_actions}")
    params = env.calibrate(env.default_params, jax.random.key(cfg.seed), seeds * episodes, layers)
    per_seed = compare(env, params, layers, seeds, first_seed, episodes, strategies, metrics)
    setup = {"policy": str(policy), "task": task, "overrides": overrides,
             "seeds": list(range(first_seed, first_seed + seeds)), "episodes_per_seed": episodes,
             "env": {k: getattr(cfg.env, k) for k in keys}}
    return params, per_seed, setup


def trajectories_of(env, episodes, params, keys: jax.Array, which: int, layers=None):
    """A task's ``trajectories``: its compiled ``episodes(params, keys, which, layers)``
    with the policy ``layers`` as float32 (``None``: zero weights over the observation's
    features, whose argmax is action 0), the ticks fetched as NumPy. ``(ticks, last)``."""
    if layers is None:
        size = env.OBSERVATION.size
        layers = [(jnp.zeros((size, env.num_actions), jnp.float32), jnp.zeros(env.num_actions, jnp.float32))]
    layers = [(jnp.asarray(w, jnp.float32), jnp.asarray(b, jnp.float32)) for w, b in layers]
    ticks, last = episodes(params, keys, jnp.int32(which), layers)
    return jax.device_get(ticks), last
