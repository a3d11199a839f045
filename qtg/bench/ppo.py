"""Throughput of PPO training (``qtg.rl.ppo``): environment steps per second of whole
updates (rollout, GAE and the update epochs, one compiled call), on the training's
default market (``conf/train.yaml``: ACME, 2 market makers, 29 noise traders and the
learner, 32 agents, book capacity 32 a side).

    python -m qtg.bench --only ppo
    python -m qtg.bench.ppo --envs 64 256 --updates 3

Reported per environment count (one seed): env steps/s (envs x num_steps x updates /
seconds, the median of ``repeats`` timed calls after one compiling call), the seconds
of the compiling call, and the update's shape. Without a GPU it runs XLA on one CPU
thread, as ``qtg.train`` does (``qtg.rl.one_cpu_thread``).
"""

from __future__ import annotations

import argparse
import json
import sys


def bench_ppo(envs=(64, 256), num_steps: int = 32, updates: int = 2, repeats: int = 2, seed: int = 0) -> list[dict]:
    import jax

    from qtg.bench import time_calls
    from qtg.rl import ppo
    from qtg.rl.config import load
    from qtg.rl.env import TradingEnv

    rows = []
    env = None
    for n in envs:
        cfg = load([f"train.num_envs={n}", f"train.num_steps={num_steps}", "train.seeds=1", f"seed={seed}"])
        env = env or TradingEnv.from_config(cfg)
        init, run, _, _ = ppo.make(env, env.default_params, cfg.train)
        runner = [init(jax.random.split(jax.random.key(seed), 1))]

        def call(run=run, runner=runner):  # each call goes on from the last one's state
            runner[0], metrics = run(runner[0], updates)
            return metrics

        first, best, _ = time_calls(call, repeats)
        steps = n * num_steps * updates
        rows.append({"envs": n, "num_steps": num_steps, "updates_per_call": updates,
                     "epochs": cfg.train.epochs, "minibatches": cfg.train.minibatches,
                     "env_steps_per_s": round(steps / best, 1), "compile_s": round(first - best, 2),
                     "s_per_update": round(best / updates, 3)})
        print(f"  {n} envs: {rows[-1]['env_steps_per_s']:,.0f} PPO env steps/s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench.ppo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--envs", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--num-steps", type=int, default=32)
    ap.add_argument("--updates", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    import qtg  # noqa: F401
    from qtg.rl import one_cpu_thread

    one_cpu_thread()  # as qtg.train does
    from qtg.bench import machine

    print(json.dumps({"machine": machine(),
                      "ppo": bench_ppo(args.envs, args.num_steps, args.updates, args.repeats)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
