"""A training run: the environment of the config's task (:func:`make_env`), PPO
(``qtg.rl.ppo``), ``train.chunk`` updates per compiled call, and after each chunk the run
directory brought up to date:

* ``metrics.csv`` (one row per update and seed: env steps, the metrics of
  ``qtg.rl.ppo.METRICS``) and ``metrics.json`` (the same as columns, and the run's figures);
* ``checkpoint.npz`` (``qtg.rl.checkpoint``: resume with ``train.resume=<run dir>``), and
  with ``train.keep`` every chunk's as ``checkpoints/update_<N>.npz``;
* ``policy.npz`` (the policy of the seed with the best mean episode return over the last
  tenth of its updates, ``systems.policy``'s format) and ``observation_spec.json`` (the
  task's, ``systems.policy.spec_for``, the environment's ``OBSERVATION``);
* at the end ``learning_curve.png`` (each seed's episode return per update, and their
  mean) and ``summary.json``.

Every file is replaced atomically, so an interrupted training leaves the last chunk's.
"""

from __future__ import annotations

import csv
import json
import math
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from qtg.core.config import config_dict
from qtg.core.files import atomic_open, write_text
from qtg.rl import checkpoint as ckpt
from qtg.rl import ppo
from qtg.rl.config import RLConfig
from qtg.rl.env import TradingEnv
from systems.policy import meta_for


def make_env(cfg: RLConfig) -> TradingEnv:
    """The environment of ``cfg.env.task``: ``qtg.rl.env.TradingEnv`` (trading),
    ``qtg.rl.execution.ExecutionEnv`` (execution) or
    ``qtg.rl.market_making.MarketMakingEnv`` (market_making) or
    ``qtg.rl.portfolio.PortfolioEnv`` (portfolio)."""
    if cfg.env.task == "execution":
        from qtg.rl.execution import ExecutionEnv

        return ExecutionEnv.from_config(cfg)
    if cfg.env.task == "market_making":
        from qtg.rl.market_making import MarketMakingEnv

        return MarketMakingEnv.from_config(cfg)
    if cfg.env.task == "portfolio":
        from qtg.rl.portfolio import PortfolioEnv

        return PortfolioEnv.from_config(cfg)
    return TradingEnv.from_config(cfg)


def seed_keys(cfg: RLConfig) -> jax.Array:
    """One PRNG key per vmapped seed: ``seed, seed + 1, ...``."""
    return jax.numpy.stack([jax.random.key(cfg.seed + i) for i in range(cfg.train.seeds)])


def tail_returns(history: dict[str, np.ndarray]) -> list[float | None]:
    """Each seed's mean episode return over the last tenth of its updates (None when no
    episode ended there)."""
    ret = history["episode_return"]
    tail = ret[:, -max(1, ret.shape[1] // 10):]
    return [float(np.nanmean(r)) if np.isfinite(r).any() else None for r in tail]


def best_seed(history: dict[str, np.ndarray]) -> int:
    """The seed whose episode returns over the last tenth of its updates are highest."""
    return int(np.argmax([-np.inf if r is None else r for r in tail_returns(history)]))


def train(cfg: RLConfig, out: str | Path, progress: bool = True, overrides: list[str] | None = None) -> dict:
    """Train as ``cfg`` says, writing into the run directory ``out``; the summary.
    ``overrides``: the command line's (``qtg.train``), kept in the policy's meta but for
    ``train.*`` and ``hydra.*``: the market an evaluation of the policy rebuilds."""
    market = [o for o in overrides or [] if not o.lstrip("+~").startswith(("train.", "hydra."))]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t = cfg.train
    config = config_dict(cfg)
    t_build = time.perf_counter()
    env = make_env(cfg)
    init, run, _, _ = ppo.make(env, env.default_params, t)
    runner = init(seed_keys(cfg))
    history: dict[str, np.ndarray] = {m: np.zeros((t.seeds, 0), np.float32) for m in ppo.METRICS}
    done = 0
    if t.resume:
        runner, history, done = ckpt.load(t.resume, runner, config)
        if done > t.updates:
            raise ckpt.CheckpointError(f"train.updates: the checkpoint has {done} updates done, more than {t.updates}")
    build_s = time.perf_counter() - t_build
    write_text(out / "observation_spec.json", json.dumps(env.OBSERVATION.to_dict(), indent=2) + "\n")
    per_update = t.seeds * t.num_envs * t.num_steps
    bar = _bar(progress, t.updates, done)
    timed_s, timed_updates, first_s = 0.0, 0, None
    try:
        while done < t.updates:
            n = min(t.chunk, t.updates - done)
            t0 = time.perf_counter()
            runner, metrics = run(runner, n)
            metrics = jax.device_get(metrics)
            dt = time.perf_counter() - t0
            if first_s is None:
                first_s = dt  # compiles the chunk's program
            else:
                timed_s, timed_updates = timed_s + dt, timed_updates + n
            history = {m: np.concatenate([history[m], np.asarray(metrics[m])], axis=1) for m in ppo.METRICS}
            done += n
            _write_metrics(out, history, per_update)
            if t.checkpoint:
                _write_policy(out, runner, history, cfg, env, market)
                ckpt.save(out / "checkpoint.npz", runner, history, done, config)
                if t.keep:
                    (out / "checkpoints").mkdir(exist_ok=True)
                    ckpt.save(out / "checkpoints" / f"update_{done:06d}.npz", runner, history, done, config)
            if bar is not None:
                bar.update(n)
                ret = [r for r in tail_returns(history) if r is not None]
                bar.set_postfix(ret=f"{np.mean(ret):.4f}" if ret else "-")
    finally:
        if bar is not None:
            bar.close()
    if not t.checkpoint:
        _write_policy(out, runner, history, cfg, env, market)
    steps_s = timed_updates * per_update / timed_s if timed_s else None
    summary = {
        "updates": done, "env_steps": done * per_update, "seeds": t.seeds, "best_seed": best_seed(history),
        "episode_return_last": tail_returns(history), "env_steps_per_s": steps_s,
        "build_s": round(build_s, 2), "first_chunk_s": None if first_s is None else round(first_s, 2),
        "config": config,
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    if t.plot:
        plot_curve(history, out / "learning_curve.png", RETURN_LABEL.get(cfg.env.task, RETURN_LABEL["trading"]))
    return summary


def _bar(progress: bool, total: int, done: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, unit="update", desc="train", dynamic_ncols=True)


def _write_policy(out: Path, runner, history, cfg: RLConfig, env, overrides: list[str]) -> None:
    seed = best_seed(history)
    params = jax.tree.map(lambda x: x[seed], runner.params)
    # An execution or market-making policy carries its task's settings: its actions and
    # features mean them.
    # A portfolio policy also carries the market's symbols: its weights are theirs.
    task = {"env": config_dict(cfg)["env"]} if cfg.env.task != "trading" else {}
    if cfg.env.task == "portfolio":
        task["market_symbols"] = list(cfg.market.symbols)
    meta = meta_for(cfg.env.task, env.num_actions, symbols=env.static.n_symbols, levels=env.levels, seed=seed,
                    updates=int(runner.update[seed]), overrides=overrides, **task)
    ckpt.write_policy(out / "policy.npz", ppo.actor_layers(params, cfg.train.hidden), meta)


def _write_metrics(out: Path, history: dict[str, np.ndarray], per_update: int) -> None:
    seeds, n = history["episode_return"].shape
    with atomic_open(out / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["update", "seed", "env_steps", *ppo.METRICS])
        for u in range(n):
            for s in range(seeds):
                w.writerow([u + 1, s, (u + 1) * per_update, *(_num(history[m][s, u]) for m in ppo.METRICS)])
    cols = {m: [[_num(v) for v in row] for row in history[m]] for m in ppo.METRICS}
    write_text(out / "metrics.json", json.dumps({"updates": n, "env_steps_per_update": per_update, **cols}) + "\n")


def _num(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else round(v, 7)


RETURN_LABEL = {"trading": "episode return (% of opening equity)",
                "execution": "episode return (minus the shortfall, bp)",
                "market_making": "episode return (bp of one quote)",
                "portfolio": "episode return (% of opening equity)"}
"""The unit of a task's episode return, the learning curve's axis."""


def plot_curve(history: dict[str, np.ndarray], path: Path, ylabel: str = RETURN_LABEL["trading"]) -> None:
    """Each seed's episode return per update (thin) and the seeds' mean (thick)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ret = history["episode_return"]
    x = np.arange(1, ret.shape[1] + 1)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for s, r in enumerate(ret):
        ok = np.isfinite(r)
        ax.plot(x[ok], r[ok], lw=0.8, alpha=0.5, label=f"seed {s}" if len(ret) <= 8 else None)
    with warnings.catch_warnings():  # an update where no seed's episode ended: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(ret, axis=0)
    ok = np.isfinite(mean)
    ax.plot(x[ok], mean[ok], lw=2.2, color="black", label="mean")
    ax.axhline(0.0, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("update")
    ax.set_ylabel(ylabel)
    ax.set_title("PPO learning curve")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)
