"""Throughput of the trading environment (``qtg.rl.env.TradingEnv``): environment steps
per second of one jitted ``lax.scan`` of ``vmap``-ed ``env.step`` calls with random
actions, gymnax's auto-reset included.

    python -m qtg.bench --only env
    python -m qtg.bench.env --envs 1 64 1024 --steps 50

The market of each environment is the ``small`` market of ``qtg.bench.rollout`` with the
learner in it: one symbol, 2 market makers, 29 noise traders and the learner (32 agents,
book capacity 32 a side), warmed up for 20 ticks, episodes of 100 steps. Reported per
environment count: env steps/s (envs x steps / seconds, the median of ``repeats`` timed
calls after one compiling call), the compile time, and the mean reward of a step.
"""

from __future__ import annotations

import argparse
import json
import sys

OVERRIDES = ["population.market_maker.count=2", "population.noise.count=29", "population.learner.count=1",
             "market.symbols=[ACME]", "engine.capacity=32"]


def bench_env(envs=(1, 1024), steps: int = 50, repeats: int = 3, seed: int = 0) -> list[dict]:
    """One row per environment count: ``env_steps_per_s``, ``compile_s``, ``ms_per_step``
    (one step of all the environments) and ``mean_reward``."""
    import jax
    import numpy as np

    from qtg.bench import time_calls
    from qtg.core.compose import load_config
    from qtg.rl.env import TradingEnv

    env = TradingEnv(load_config(OVERRIDES), warmup=20, episode=100)
    params = env.default_params
    rows = []
    for n in envs:
        def run(key, states, n=n):
            def body(carry, _):
                states, key = carry
                key, k_act, k_step = jax.random.split(key, 3)
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
        rows.append({"envs": n, "steps": steps, "env_steps_per_s": round(n * steps / best, 1),
                     "ms_per_step": round(best / steps * 1e3, 3), "compile_s": round(first - best, 2),
                     "mean_reward": float(np.asarray(rewards).mean())})
        print(f"  {n} envs: {rows[-1]['env_steps_per_s']:,.0f} env steps/s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench.env", description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=int, nargs="+", default=[1, 1024])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import qtg  # noqa: F401
    from qtg.bench import machine

    print(json.dumps({"machine": machine(), "env": bench_env(args.envs, args.steps, args.repeats)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
