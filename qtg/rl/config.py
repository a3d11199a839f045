"""The training config: the run's schema (``qtg.core.config.Config``: the market and its
population, a learner among them) plus three sections, ``env`` (the task), ``reward`` and
``train`` (the algorithm's hyperparameters). ``conf/train.yaml`` composes it; the Hydra
groups ``env`` and ``reward`` pick a task (``trading``, ``execution``, ``market_making``,
``portfolio``) and a reward (the trading and portfolio tasks'; the other tasks have their
own, set in ``env``); ``+experiment=rl_ppo`` is the default PPO run,
``+experiment=rl_execution``, ``+experiment=rl_market_making`` and
``+experiment=rl_portfolio`` PPO on the other tasks. Every number is checked against its bounds before anything is built, as
in a run's config."""

from __future__ import annotations

import dataclasses

from components.schema import setting
from qtg.core.config import Config, ConfigError

TASKS = ("trading", "execution", "market_making", "portfolio")
SIDES = ("sell", "buy")
ALGORITHMS = ("ppo",)
MARKS = ("market", "fair", "edge")


@dataclasses.dataclass
class EnvConfig:
    """The task. Its books are the device engine's, of ``engine.capacity`` orders a side."""

    task: str = setting("trading", doc=(
        "The task: trading (one symbol, discrete sell/hold/buy in a few sizes) or execution (sell or buy "
        "env.quantity shares within the episode, rewarded by the implementation shortfall; qtg.rl.execution) or "
        "market_making (quote both sides, earn the spread, carry little inventory; qtg.rl.market_making) or "
        "portfolio (every symbol at continuous target weights; qtg.rl.portfolio)."))
    warmup: int = setting(30, lo=0, hi=100_000, doc=(
        "Ticks the market runs before the opening of every episode (books two-sided, indicators ready)."))
    episode: int = setting(100, lo=1, hi=1_000_000, doc="Ticks of an episode.")
    openings: int = setting(1, lo=1, hi=4096, doc=(
        "Trading, market making and portfolio: distinct openings (the warm-up run that many times, each with its own key); each "
        "episode starts from one drawn by its reset key. 1: every episode from the one opening."))
    side: str = setting("sell", doc="Execution: sell (liquidate env.quantity shares held) or buy (acquire them).")
    quantity: int = setting(5000, lo=1, hi=10**9, doc="Execution: the shares to trade within the episode.")
    levels: int = setting(4, lo=2, hi=16, doc=(
        "Execution: actions 0..levels; action a trades a / levels of twice the TWAP slice "
        "ceil(quantity / episode), so levels / 2 is the TWAP pace (even). Market making: quote levels a side "
        "(even; levels / 2 is the symmetric baseline's)."))
    penalty_bps: float = setting(500.0, hi=1e6, doc=(
        "Execution: penalty at the episode's last tick, basis points of quantity x arrival price per "
        "whole quantity left untraded (pro rata)."))
    quote_size: int = setting(100, lo=1, hi=10**9, doc="Market making: shares of each quote.")
    step_bps: float = setting(2.0, lo=0.01, hi=1000.0, doc=(
        "Market making: distance between quote levels, basis points of the reference price (level l quotes "
        "l * step_bps from it)."))
    inventory_bps: float = setting(0.5, hi=1e6, doc=(
        "Market making: penalty per tick, basis points of one quote's value per quote's worth of shares held."))
    close_bps: float = setting(5.0, hi=1e6, doc=(
        "Market making: penalty at the last tick, basis points of one quote's value per quote's worth still held."))
    as_gamma: float = setting(5.0, lo=1e-06, hi=1e6, doc=(
        "Market making: the Avellaneda-Stoikov baseline's risk aversion (per quote of inventory)."))
    as_k: float = setting(5000.0, lo=1e-06, hi=1e9, doc=(
        "Market making: the Avellaneda-Stoikov baseline's order-arrival decay, per unit of relative distance "
        "from the mid."))
    gross: float = setting(1.0, lo=0.01, hi=4.0, doc=(
        "Portfolio: the most the absolute target weights may sum to (1: fully invested without leverage)."))
    band: float = setting(0.002, lo=0.0, hi=1.0, doc=(
        "Portfolio: a symbol trades only when its gap to the target is worth more than this share of the equity."))


@dataclasses.dataclass
class RewardConfig:
    """The reward of a step, in percent of the learner's equity at the episode's start:
    ``pnl * dE - inventory * |held value| - drawdown * (drawdown's growth) - variance * dE**2
    - cost_bps / 1e4 * |traded value|``, plus ``sharpe`` times the episode's Sharpe ratio of
    its step rewards at its last step."""

    pnl: float = setting(1.0, doc="Weight of the change of equity (cash plus shares at the marks).")
    inventory: float = setting(0.0, doc="Penalty per tick per percent of equity held in shares (long or short).")
    drawdown: float = setting(0.0, doc="Penalty per percent that the drawdown from the episode's peak equity grows.")
    variance: float = setting(0.0, doc="Penalty on the squared change of equity (percent squared).")
    cost_bps: float = setting(0.0, hi=10_000.0, doc=(
        "Transaction cost charged on the value traded, basis points (on top of the spread the market takes)."))
    sharpe: float = setting(0.0, doc=(
        "Weight of the episode's Sharpe ratio (mean over standard deviation of the step changes of "
        "equity), paid at its last step."))
    mark: str = setting("market", doc=(
        "How the reward values the learner's shares: market (at the marks, mid or last trade) or fair "
        "(at the fundamentals' fair value: a purchase below fair value pays at once, and a position "
        "earns only what the fair value moves; shaping for markets whose prices find fair value slowly) "
        "or edge (a step pays only what its trades made against the fair value, cash paid or received "
        "plus the shares traded at the fair value after the step; the shares held are not marked again, "
        "so the fair value's own moves, which no trade can foresee, add no noise to the reward)."))


@dataclasses.dataclass
class TrainConfig:
    algo: str = setting("ppo", doc="The algorithm: ppo.")
    seeds: int = setting(1, lo=1, hi=1024, doc="Independent trainings run at once (vmapped), seeds seed..seed+seeds-1.")
    num_envs: int = setting(64, lo=1, hi=1_000_000, doc="Markets stepped at once per seed (vmapped).")
    num_steps: int = setting(32, lo=1, hi=100_000, doc="Steps of each market per update (the rollout's length).")
    updates: int = setting(100, lo=1, hi=10**9, doc="Updates of the policy in all.")
    epochs: int = setting(4, lo=1, hi=1000, doc="Passes over each rollout per update.")
    minibatches: int = setting(4, lo=1, hi=1_000_000, doc=(
        "Minibatches per epoch (num_envs * num_steps must divide by it)."))
    lr: float = setting(3e-4, lo=0.0, hi=1.0, doc="Adam's learning rate.")
    anneal_lr: bool = setting(True, doc="Decay the learning rate linearly to 0 over the updates.")
    gamma: float = setting(0.99, lo=0.0, hi=1.0, doc="Discount per step.")
    gae_lambda: float = setting(0.95, lo=0.0, hi=1.0, doc="GAE's lambda.")
    clip: float = setting(0.2, lo=0.0, hi=10.0, doc="PPO's clip of the probability ratio (and of the value change).")
    ent_coef: float = setting(0.01, doc="Weight of the policy's entropy bonus.")
    vf_coef: float = setting(0.5, doc="Weight of the value loss.")
    max_grad_norm: float = setting(0.5, doc="Clip of the gradient's global norm.")
    hidden: list[int] = setting([64, 64], lo=1, hi=4096, doc="Hidden layer widths of the policy and value MLPs.")
    chunk: int = setting(10, lo=1, hi=10**6, doc=(
        "Updates per compiled call: the progress bar, the metrics files and the checkpoint advance "
        "once per chunk."))
    checkpoint: bool = setting(True, doc="Write a checkpoint (and the policy) after every chunk.")
    keep: bool = setting(False, doc=(
        "Keep every chunk's checkpoint as checkpoints/update_<N>.npz (train.resume may name any of them)."))
    plot: bool = setting(True, doc="Write learning_curve.png at the end.")
    resume: str = setting("", doc="A checkpoint directory to continue training from (bit-identically).")


@dataclasses.dataclass
class RLConfig(Config):
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    reward: RewardConfig = dataclasses.field(default_factory=RewardConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)


def check(cfg: RLConfig) -> None:
    """What no bound expresses: names, the learner, the minibatch split. ConfigError."""
    if cfg.env.task not in TASKS:
        raise ConfigError(f"env.task: unknown task '{cfg.env.task}'; allowed: {', '.join(TASKS)}")
    if cfg.env.side not in SIDES:
        raise ConfigError(f"env.side: unknown side '{cfg.env.side}'; allowed: {', '.join(SIDES)}")
    if cfg.env.levels % 2:
        raise ConfigError(f"env.levels: must be even (levels / 2 is the TWAP pace, or the symmetric quotes), got {cfg.env.levels}")
    if cfg.env.task == "execution" and cfg.env.openings != 1:
        raise ConfigError(f"env.openings: the execution task starts every episode from one opening (its arrival "
                          f"price), got {cfg.env.openings}")
    if cfg.reward.mark not in MARKS:
        raise ConfigError(f"reward.mark: unknown valuation '{cfg.reward.mark}'; allowed: {', '.join(MARKS)}")
    if cfg.train.algo not in ALGORITHMS:
        raise ConfigError(f"train.algo: unknown algorithm '{cfg.train.algo}'; allowed: {', '.join(ALGORITHMS)}")
    learners = cfg.population.get("learner")
    if learners is None or learners.count < 1:
        raise ConfigError("population.learner.count: training needs at least one learner, got 0")
    if cfg.env.task == "execution" and learners.count != 1:
        raise ConfigError(f"population.learner.count: the execution task has exactly one learner, got {learners.count}")
    t = cfg.train
    if (t.num_envs * t.num_steps) % t.minibatches:
        raise ConfigError(f"train.minibatches: must divide num_envs * num_steps = {t.num_envs * t.num_steps}, "
                          f"got {t.minibatches}")
    if not t.hidden:
        raise ConfigError("train.hidden: at least one hidden layer is needed, got []")


def register() -> None:
    """Register the schema with Hydra's ConfigStore as ``train_schema`` (``conf/train.yaml``)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="train_schema", node=RLConfig)


def load(overrides: list[str]) -> RLConfig:
    """``conf/train.yaml`` with overrides, typed and checked. Raises ConfigError (one line)."""
    from qtg.core.compose import load_config

    register()
    cfg = load_config(overrides, name="train", cls=RLConfig)
    check(cfg)
    return cfg
