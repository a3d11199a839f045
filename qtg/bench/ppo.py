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

``--procs N`` runs the benchmark in N processes at once, each on a core of its own (N
trainings side by side, as a sweep runs them: a training uses one thread), and reports
each process's rows and, per environment count, their env steps/s summed.
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
    ap.add_argument("--procs", type=int, default=1, help="processes at once, a core each (default 1)")
    ap.add_argument("--core", type=int, default=None, help=argparse.SUPPRESS)  # a --procs copy's core
    args = ap.parse_args(argv)
    if args.procs != 1:
        return side_by_side(args.procs, list(argv if argv is not None else sys.argv[1:]))
    if args.core is not None:
        import os

        os.sched_setaffinity(0, {args.core})  # before JAX sizes its thread pool
    import qtg  # noqa: F401
    from qtg.rl import one_cpu_thread

    one_cpu_thread()  # as qtg.train does
    from qtg.bench import machine

    print(json.dumps({"machine": machine(),
                      "ppo": bench_ppo(args.envs, args.num_steps, args.updates, args.repeats)}, indent=2))
    return 0


def child_args(argv: list[str]) -> list[str]:
    """``argv`` without its ``--procs N`` (or ``--procs=N``): what each copy runs."""
    return [a for i, a in enumerate(argv)
            if a != "--procs" and not a.startswith("--procs=") and (i == 0 or argv[i - 1] != "--procs")]


def side_by_side(procs: int, argv: list[str]) -> int:
    """``procs`` copies of this benchmark at once, copy ``i`` pinned to the ``i``-th core
    this process may use; prints their rows and the env steps/s summed per environment
    count. Exit 2 when there are fewer cores than copies or ``procs`` < 1."""
    import subprocess

    from qtg.rl import allowed_cores

    cores = allowed_cores()
    if not 1 <= procs <= len(cores):
        print(f"--procs: {procs}, must be 1..{len(cores)} (the cores this process may use)", file=sys.stderr)
        return 2
    child = child_args(argv)
    runs = [subprocess.Popen([sys.executable, "-m", "qtg.bench.ppo", *child, "--core", str(core)],
                             stdout=subprocess.PIPE, text=True) for core in cores[:procs]]
    outs = [run.communicate()[0] for run in runs]
    if any(run.returncode for run in runs):
        print(f"qtg.bench.ppo: a process failed (exit codes {[run.returncode for run in runs]})", file=sys.stderr)
        return 1
    results = [json.loads(out) for out in outs]
    total: dict[int, float] = {}
    for r in results:
        for row in r["ppo"]:
            total[row["envs"]] = total.get(row["envs"], 0.0) + row["env_steps_per_s"]
    print(json.dumps({"machine": results[0]["machine"], "procs": procs, "processes": [r["ppo"] for r in results],
                      "ppo": [{"envs": n, "env_steps_per_s": round(v, 1)} for n, v in total.items()]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
