"""``python -m qtg.evaluate POLICY [overrides]``: a trained policy against the market's
other traders and buy-and-hold, over held-out seeds, with 95% confidence intervals.

The market is the training's (``conf/train.yaml`` with the same overrides, e.g.
``population.noise.count=100``) with its learners replaced by ``--agents`` ``rl_policy``
agents trading ``POLICY`` (by default as many as it has learners; they take the learners'
place and fields, so the market is the one the policy trained in), and ``--strategies`` agents of each built-in signal
strategy (momentum, trend_follower, macd_cross, bollinger_reversion, fundamentalist;
0 leaves them out). Each of ``--seeds`` seeds (``--first-seed`` on, seeds the training
never drew from) runs ``--ticks`` ticks on the fast engine; ``--jobs N`` runs them in N
processes at once, a core each (the same per-seed values, in seed order).

Per seed and kind: the median over the kind's agents of the total return, the Sharpe
ratio of per-tick returns and the maximum drawdown (the run's risk statistics, as in
its summary table). Buy-and-hold is the symbol bought at the opening mark and held,
fully invested, its equity following the marks. The table gives each row's mean over
seeds with a Student t 95% interval, and the policy's paired difference from each
other row (the same seeds): an interval above 0 means it beat that row. Written to
``--out`` (default ``outputs/evaluate/<date>/<time>``): ``evaluation.json`` and
``evaluation.png``.

An execution policy (``env=execution``; ``qtg.rl.execution``) is evaluated in its own
environment instead: the policy, TWAP and VWAP over the same ``--seeds`` held-out seeds of
``--episodes`` episodes each, their implementation shortfall in basis points with 95%
intervals, and the policy's paired saving over each baseline. So is a market-making
policy (``env=market_making``; ``qtg.rl.market_making``): the policy, the symmetric quoter
and Avellaneda–Stoikov, their return, P&L (bp of one quote), mean inventory and traded
quotes, and the policy's paired advantage in return. And a portfolio policy
(``env=portfolio``; ``qtg.rl.portfolio``): the policy, all cash, equal weights and the
value baseline, their total return, Sharpe ratio, maximum drawdown and turnover, and the
policy's paired advantage in return.

Examples::

    python -m qtg.evaluate outputs/train/2026-12-07/10-00-00
    python -m qtg.evaluate outputs/train/2026-12-07/10-00-00/policy.onnx --seeds 20 --ticks 2000
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import sys
from pathlib import Path

import numpy as np

import qtg  # noqa: F401  (enables x64 before any array exists)
from qtg.core.config import ConfigError

STRATEGIES = ("momentum", "trend_follower", "macd_cross", "bollinger_reversion", "fundamentalist")
METRICS = ("total_return", "sharpe", "max_drawdown")
HOLD = "buy_and_hold"
POLICY = "rl_policy"
SHARED = ("size", "max_position", "collar", "cash", "shares", "max_short", "latency")
"""The learner's fields an rl_policy agent takes over."""


def eval_config(policy: str, overrides: list[str], seed: int, ticks: int, agents: int | None, strategies: int):
    """The run config of one evaluation seed. ConfigError with one line."""
    from qtg.core.compose import load_config
    from qtg.core.config import Config
    from qtg.rl.config import RLConfig, register

    register()
    base = load_config(overrides, name="train", cls=RLConfig)
    learner = base.population["learner"]
    agents = learner.count if agents is None else agents
    extra = ["population.learner.count=0", f"population.{POLICY}.count={agents}",
             f"population.{POLICY}.policy='{policy}'", f"seed={seed}", f"run.ticks={ticks}"]
    for field in SHARED:
        value = getattr(learner, field)
        extra.append(f"population.{POLICY}.{field}=" + (f"[{value[0]},{value[1]}]" if isinstance(value, list)
                                                          else str(value)))
    extra += [f"population.{name}.count={strategies}" for name in STRATEGIES]
    cfg = load_config([*overrides, *extra], name="train", cls=RLConfig)
    run = Config(**{f: getattr(cfg, f) for f in Config.__dataclass_fields__})
    return run


def run_seed(cfg) -> dict[str, dict[str, float]]:
    """Per row (kind, and buy-and-hold), the seed's metrics."""
    from qtg.core.sim import Simulation
    from qtg.core.world import build_world, make_engine_for
    from qtg.hooks import Recorder
    from qtg.reports.summary import history_marks, summarize

    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    rec = Recorder()
    sim.run(cfg.run.ticks, hooks=[rec])
    summary = summarize(cfg, world.state, sim, rec, 0.0)
    rows = {}
    for kind, risk in summary["risk_by_kind"].items():
        if isinstance(risk, dict) and "total_return" in risk:
            rows[kind] = {m: risk[m]["median"] for m in METRICS}
    marks = history_marks(rec.arrays())[:, 0]
    rows[HOLD] = hold_metrics(np.concatenate([[float(world.state.market.last[0])], marks]))
    return rows


def hold_metrics(marks: np.ndarray) -> dict[str, float]:
    """Total return, per-tick Sharpe and maximum drawdown of an equity that follows ``marks``."""
    r = marks[1:] / marks[:-1] - 1.0
    sd = float(np.std(r, ddof=1)) if len(r) > 1 else 0.0
    peak = np.maximum.accumulate(marks)
    return {"total_return": float(marks[-1] / marks[0] - 1.0), "sharpe": float(np.mean(r) / sd) if sd > 0 else 0.0,
            "max_drawdown": float(np.max(1.0 - marks / peak))}


def aggregate(per_seed: list[dict[str, dict[str, float]]]) -> dict:
    """Mean and 95% interval per row and metric; the policy's paired differences of return."""
    from qtg.reports.tournament import paired, rows_ci

    return {"rows": rows_ci(per_seed, METRICS), "versus": paired(per_seed, "total_return", "return_diff", reference=POLICY)}


COLUMNS = (("total_return", "return %", 100.0), ("sharpe", "Sharpe per tick", 1.0), ("max_drawdown", "max drawdown %", 100.0))
"""The table's and the chart's columns: (metric, label, scale)."""


def table(result: dict) -> str:
    from qtg.reports.tournament import ci_table

    return ci_table(result, COLUMNS, "return_diff", "return, %", digits=3, scale=100.0, reference=POLICY)


def chart(result: dict, path: Path, title: str) -> None:
    from qtg.reports.tournament import ci_chart

    ci_chart(result["rows"], COLUMNS, path, title, {POLICY: "tab:orange", HOLD: "tab:gray"})


def evaluate(policy: str, overrides: list[str], seeds: int = 10, first_seed: int = 1000, ticks: int = 1000,
             agents: int | None = None, strategies: int = 2, progress: bool = False, jobs: int = 1) -> dict:
    """Run the seeds (in ``jobs`` processes); the aggregate (rows, versus) and the
    per-seed values."""
    cfg = eval_config(policy, overrides, first_seed, ticks, agents, strategies)  # checked before any run
    configs = [dataclasses.replace(cfg, seed=s) for s in range(first_seed, first_seed + seeds)]
    per_seed = in_processes(run_seed, configs, jobs, progress, "evaluate")
    result = aggregate(per_seed)
    result["per_seed"] = per_seed
    result["setup"] = {"policy": str(policy), "overrides": overrides, "seeds": list(range(first_seed, first_seed + seeds)),
                       "ticks": ticks, "agents": cfg.population[POLICY].count, "strategies": strategies}
    return result


def in_processes(fn, items: list, jobs: int = 1, progress: bool = False, desc: str = "") -> list:
    """``[fn(x) for x in items]``, in order: here when ``jobs`` is 1, else in ``jobs``
    processes at once (spawned: JAX is not safe to fork), each pinned to a core of its own
    before it starts JAX, so its XLA runs on one thread as a training's does
    (``qtg.rl.one_cpu_thread``). A progress bar over the items when ``progress``."""
    jobs = max(1, min(int(jobs), len(items)))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), unit="seed", desc=desc)
    try:
        if jobs == 1:
            return [_counted(fn(x), bar) for x in items]
        import concurrent.futures
        import multiprocessing

        from qtg.rl import allowed_cores

        ctx = multiprocessing.get_context("spawn")
        cores = ctx.Queue()
        allowed = allowed_cores()
        for i in range(jobs):
            cores.put(allowed[i % len(allowed)] if allowed else -1)
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_take_core,
                                                    initargs=(cores,)) as pool:
            return [_counted(value, bar) for value in pool.map(fn, items)]
    finally:
        if bar is not None:
            bar.close()


def _counted(value, bar):
    if bar is not None:
        bar.update()
    return value


def _take_core(cores) -> None:
    """A worker of :func:`in_processes`: on the next free core, before JAX starts."""
    import os

    core = cores.get()
    if core >= 0:
        os.sched_setaffinity(0, {core})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("policy", help="a training run's directory, its policy.npz or an exported policy.onnx")
    ap.add_argument("overrides", nargs="*", help="overrides of the training config (conf/train.yaml)")
    ap.add_argument("--seeds", type=int, default=10, help="held-out seeds (default 10)")
    ap.add_argument("--first-seed", type=int, default=1000, help="the first of them (default 1000)")
    ap.add_argument("--ticks", type=int, default=1000, help="ticks per seed (default 1000)")
    ap.add_argument("--agents", type=int, help=(
        "rl_policy agents (default: as many as the training market has learners, so the market is the one "
        "the policy trained in)"))
    ap.add_argument("--strategies", type=int, default=2, help="agents of each built-in strategy (default 2; 0: none)")
    ap.add_argument("--episodes", type=int, default=16, help=(
        "an execution or market-making policy: episodes per seed, the seed's value their mean (default 16)"))
    ap.add_argument("--jobs", type=int, default=1, help=(
        "the trading task: seeds run in this many processes at once, a core each (default 1)"))
    ap.add_argument("--out", help="output directory (default outputs/evaluate/<date>/<time>)")
    args = ap.parse_args(argv)
    for name in ("seeds", "ticks", "agents", "episodes", "jobs"):
        if getattr(args, name) is not None and getattr(args, name) < (2 if name == "seeds" else 1):
            print(f"qtg.evaluate: --{name.replace('_', '-')}: must be at least {2 if name == 'seeds' else 1}, "
                  f"got {getattr(args, name)}", file=sys.stderr)
            return 2
    if args.strategies < 0:
        print(f"qtg.evaluate: --strategies: must be >= 0, got {args.strategies}", file=sys.stderr)
        return 2
    policy = str(Path(args.policy).resolve())
    task = policy_task(policy)
    if task in TASK_MODULES:
        return _task(args, policy, task)
    try:
        result = evaluate(policy, args.overrides, args.seeds, args.first_seed, args.ticks, args.agents,
                          args.strategies, progress=sys.stderr.isatty(), jobs=args.jobs)
    except ConfigError as e:
        print(f"qtg.evaluate: config error: {e}", file=sys.stderr)
        return 2
    out = _out_dir(args)
    from qtg.core.files import write_text

    write_text(out / "evaluation.json", json.dumps(result, indent=2, default=_json) + "\n")
    chart(result, out / "evaluation.png", f"{Path(args.policy).name}: {args.seeds} held-out seeds x {args.ticks} ticks")
    print(table(result))
    print(f"\noutputs in {out}")
    return 0


def _out_dir(args) -> Path:
    out = Path(args.out) if args.out else Path("outputs/evaluate") / datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    out.mkdir(parents=True, exist_ok=True)
    return out


def policy_task(policy: str) -> str | None:
    """The task of the policy file (its meta's), None when it cannot be read (the trading
    evaluation then reports why, with the config's line)."""
    from systems.policy import PolicyError, read_policy, task_of

    try:
        return task_of(read_policy(policy)[1])
    except PolicyError:
        return None


TASK_MODULES = {"execution": "qtg.rl.execution", "market_making": "qtg.rl.market_making",
                "portfolio": "qtg.rl.portfolio"}
"""Tasks evaluated in their own environment against their baselines, by module."""


def _task(args, policy: str, task: str) -> int:
    """An execution or market-making policy: in its environment against the task's
    baselines (the module's ``evaluate``, ``table`` and ``chart``)."""
    import importlib

    from qtg.core.files import write_text

    module = importlib.import_module(TASK_MODULES[task])
    try:
        result = module.evaluate(policy, args.overrides, args.seeds, args.first_seed, args.episodes)
    except ConfigError as e:
        print(f"qtg.evaluate: config error: {e}", file=sys.stderr)
        return 2
    out = _out_dir(args)
    write_text(out / "evaluation.json", json.dumps(result, indent=2, default=_json) + "\n")
    module.chart(result, out / "evaluation.png",
                 f"{Path(args.policy).name}: {args.seeds} held-out seeds x {args.episodes} episodes")
    print(module.table(result))
    print(f"\noutputs in {out}")
    return 0


def _json(v):
    if isinstance(v, float) and math.isnan(v):
        return None
    return float(v)


if __name__ == "__main__":
    sys.exit(main())
