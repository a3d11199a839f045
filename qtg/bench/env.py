"""Throughput of the trading environment (``qtg.rl.env.TradingEnv``) or the portfolio
environment (``qtg.rl.portfolio.PortfolioEnv``): environment steps per second of one
jitted ``lax.scan`` of ``vmap``-ed ``env.step`` calls with random actions, gymnax's
auto-reset included.

    python -m qtg.bench --only env
    python -m qtg.bench.env --envs 1 64 1024 --steps 50
    python -m qtg.bench.env --envs 64 --symbols 4 --task portfolio

The market of each environment is the ``small`` market of ``qtg.bench.rollout`` with the
learner in it: one symbol, 2 market makers, 29 noise traders and the learner (32 agents,
book capacity 32 a side), warmed up for 20 ticks, episodes of 100 steps. With
``--symbols N`` it has the first N default symbols, ``max(2, N)`` makers and 32 agents
still. Reported per environment count: env steps/s (envs x steps / seconds, the median of
``repeats`` timed calls after one compiling call), the compile time, and the mean reward
of a step.
"""

from __future__ import annotations

import argparse
import json
import sys

OVERRIDES = ["population.market_maker.count=2", "population.noise.count=29", "population.learner.count=1",
             "market.symbols=[ACME]", "engine.capacity=32"]


def overrides(symbols: int = 1) -> list[str]:
    """The benchmark market with ``symbols`` symbols (the first of the default ones)."""
    if symbols == 1:
        return list(OVERRIDES)
    from qtg.core.config import DEFAULT_SYMBOLS

    makers = max(2, symbols)
    return [f"population.market_maker.count={makers}", f"population.noise.count={31 - makers}",
            "population.learner.count=1", f"market.symbols=[{','.join(DEFAULT_SYMBOLS[:symbols])}]",
            "engine.capacity=32"]


def bench_env(envs=(1, 1024), steps: int = 50, repeats: int = 3, seed: int = 0, symbols: int = 1,
              task: str = "trading") -> list[dict]:
    """One row per environment count: ``env_steps_per_s``, ``compile_s``, ``ms_per_step``
    (one step of all the environments) and ``mean_reward``."""
    import jax
    import numpy as np

    from qtg.bench import time_calls
    from qtg.core.compose import load_config
    from qtg.rl.env import TradingEnv
    from qtg.rl.portfolio import PortfolioEnv

    cls = PortfolioEnv if task == "portfolio" else TradingEnv
    env = cls(load_config(overrides(symbols)), warmup=20, episode=100)
    params = env.default_params
    rows = []
    for n in envs:
        def run(key, states, n=n):
            def body(carry, _):
                states, key = carry
                key, k_act, k_step = jax.random.split(key, 3)
                if task == "portfolio":  # random weights
                    actions = jax.random.uniform(k_act, (n, env.num_actions), jax.numpy.float32, -1.0, 1.0)
                else:
                    actions = jax.random.randint(k_act, (n,), 0, env.num_actions)
                _, states, reward, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                    jax.random.split(k_step, n), states, actions, params)
                return (states, key), reward.mean()
            (states, key), rewards = jax.lax.scan(body, (states, key), None, length=steps)
            return states, rewards

        call = jax.jit(run)
        key = jax.random.key(seed)
        _, states = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(jax.random.split(key, n), params)
        first, best, (_, rewards) = time_calls(lambda call=call, key=key, states=states: call(key, states), repeats)
        rows.append({"task": task, "symbols": symbols, "envs": n, "steps": steps,
                     "env_steps_per_s": round(n * steps / best, 1),
                     "ms_per_step": round(best / steps * 1e3, 3), "compile_s": round(first - best, 2),
                     "mean_reward": float(np.asarray(rewards).mean())})
        print(f"  {n} envs: {rows[-1]['env_steps_per_s']:,.0f} env steps/s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench.env", description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=int, nargs="+", default=[1, 1024])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--symbols", type=int, default=1, choices=range(1, 11), metavar="1..10",
                    help="symbols of the market (default 1)")
    ap.add_argument("--task", choices=["trading", "portfolio"], default="trading")
    args = ap.parse_args(argv)
    import qtg  # noqa: F401
    from qtg.bench import machine

    rows = bench_env(args.envs, args.steps, args.repeats, symbols=args.symbols, task=args.task)
    print(json.dumps({"machine": machine(), "env": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
