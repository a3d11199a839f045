"""``python -m qtg.bench``: the project's benchmarks, printed as JSON.

    python -m qtg.bench                       # engines + 10k/100k/1M agents (several minutes)
    python -m qtg.bench --only engines
    python -m qtg.bench --only indicators
    python -m qtg.bench --only world --agents 10000 100000 --ticks 200
    python -m qtg.bench --only world --agents 100000 --mix all   # the seven single-symbol kinds
    python -m qtg.bench --only world --agents 10000 --market default --mix all  # 10 symbols, news, shorts
    python -m qtg.bench --only world --agents 10000 --engine device   # the same world on the device engine
    python -m qtg.bench --only world --mix tiers --market default --agents 10000 100000 1000000 --plot scaling.png
    python -m qtg.bench --only wake           # the tier 2 wake mask at 10k / 100k / 1M rows
    python -m qtg.bench --only storage        # seed_100k with the storage hook off and on
    python -m qtg.bench --only tui            # ticks/s with and without the terminal view
    python -m qtg.bench --only device_book    # orders/s of the device book, 1 to 1,024 books
    python -m qtg.bench --only rollout        # market-ticks/s of the whole tick on the device, 1 to 1,024 markets
    python -m qtg.bench --only env            # env steps/s of the trading environment, 1 and 1,024 envs
    python -m qtg.bench --only ppo            # PPO training env steps/s (rollout + update), 64 and 256 envs
    python -m qtg.bench --out bench.json

Engines: orders/s of each engine on the standard 200,000-order stream (see
``systems/matching/stream.py``). Indicators: ms per tick of one jitted update and read of
every indicator for 10 symbols with 8 period sets each (``qtg/bench/indicators.py``). World: for each agent count, a market of 1% market makers
and 99% noise traders on two symbols; ms per tick (median and p90, after warm-up), orders
and fills per tick, peak resident memory of the process, and where the tick's time goes
(read phase = observe+decide+admit+arrive on device, match = host engine incl. transfers,
write phase = settle+measure on device). Each agent count runs in its own process so that
its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import sys

from qtg.bench import machine
from qtg.bench.world import WORLD_AGENTS, bench_world, plot_scaling, world_in_subprocess


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["engines", "indicators", "world", "wake", "storage", "tui", "device_book", "rollout", "env", "ppo"],
                    help="run one part only")
    ap.add_argument("--agents", type=int, nargs="+", default=list(WORLD_AGENTS))
    ap.add_argument("--ticks", type=int, default=200, help="measured ticks per world (default 200)")
    ap.add_argument("--mix", choices=["basic", "all", "default", "tiers"], default="basic",
                    help="world population: makers+noise trading 1-5%% of ticks (basic), the seven single-symbol kinds "
                         "(all), the default population's kinds and parameters scaled up (default), or the "
                         "seed_100k preset's three tiers scaled to --agents (tiers)")
    ap.add_argument("--plot", help="with --only world: write ms/tick against agents (log-log) to this PNG")
    ap.add_argument("--market", choices=["two", "default"], default="two",
                    help="two symbols (default) or the default 10-symbol market with news and shorting")
    ap.add_argument("--engine", choices=["fast", "exact", "device"], default="fast",
                    help="matching engine of the world benchmark (default fast)")
    ap.add_argument("--capacity", type=int, help="with --engine device: orders per book side (default engine.capacity)")
    ap.add_argument("--orders", type=int, default=200_000, help="engine stream length")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--_world-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import qtg  # noqa: F401

    if args._world_child:
        print(json.dumps(bench_world(args._world_child, args.ticks, engine=args.engine, mix=args.mix,
                                     market=args.market, capacity=args.capacity)))
        return 0

    result: dict = {"machine": machine()}
    if args.only in (None, "engines"):
        from qtg.bench.matching import bench_engines

        print("benchmarking engines ...", file=sys.stderr)
        result["engines"] = bench_engines(n=args.orders)
    if args.only in (None, "indicators"):
        from qtg.bench.indicators import bench_indicators

        print("benchmarking indicators ...", file=sys.stderr)
        result["indicators"] = bench_indicators()
    if args.only == "device_book":
        from qtg.bench.device_book import bench_device_book

        print("benchmarking the device book ...", file=sys.stderr)
        result["device_book"] = bench_device_book()
    if args.only == "rollout":
        from qtg.bench.rollout import bench_rollout

        print("benchmarking rollouts of the device tick ...", file=sys.stderr)
        result["rollout"] = bench_rollout(ticks=min(args.ticks, 50))
    if args.only == "ppo":
        from qtg.bench.ppo import bench_ppo
        from qtg.rl import one_cpu_thread

        one_cpu_thread()  # as qtg.train does (before the first array)

        print("benchmarking PPO training ...", file=sys.stderr)
        result["ppo"] = bench_ppo()
    if args.only == "env":
        from qtg.bench.env import bench_env

        print("benchmarking the trading environment ...", file=sys.stderr)
        result["env"] = bench_env(steps=min(args.ticks, 50))
    if args.only == "wake":
        from qtg.bench.wake import bench_wake

        print("benchmarking the wake mask ...", file=sys.stderr)
        result["wake"] = bench_wake()
    if args.only == "storage":
        from qtg.bench.storage import bench_storage

        print("benchmarking the storage hook at seed_100k ...", file=sys.stderr)
        result["storage"] = bench_storage(ticks=args.ticks)
    if args.only == "tui":
        from qtg.bench.tui import WORLDS, measure

        result["tui"] = []
        for name, (overrides, ticks) in WORLDS.items():
            print(f"benchmarking the terminal view on the {name} world ...", file=sys.stderr)
            result["tui"].append(measure(name, overrides, ticks, 7, 10.0, warmup=min(ticks, 200)))
    if args.only in (None, "world"):
        result["world"] = []
        for n in args.agents:
            print(f"benchmarking world with {n:,} agents ...", file=sys.stderr)
            result["world"].append(world_in_subprocess(n, args.ticks, args.mix, args.market, args.engine,
                                                     args.capacity))
        if args.plot:
            plot_scaling(result["world"], args.plot, f"{args.mix} mix, {args.market} market")
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
