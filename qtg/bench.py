"""``python -m qtg.bench``: the project's benchmarks, printed as JSON.

    python -m qtg.bench                       # engines + 10k/100k/1M agents (several minutes)
    python -m qtg.bench --only engines
    python -m qtg.bench --only indicators
    python -m qtg.bench --only world --agents 10000 100000 --ticks 200
    python -m qtg.bench --only world --agents 100000 --mix all   # the seven single-symbol kinds
    python -m qtg.bench --only world --agents 10000 --market default --mix all  # 10 symbols, news, shorts
    python -m qtg.bench --out bench.json

Engines: orders/s of each engine on the standard 200,000-order stream (see
``systems/matching/stream.py``). Indicators: ms per tick of one jitted update and read of
every indicator for 10 symbols with 8 period sets each (``qtg/bench_indicators.py``). World: for each agent count, a market of 1% market makers
and 99% noise traders on two symbols; ms per tick (median and p90, after warm-up), orders
and fills per tick, peak resident memory of the process, and where the tick's time goes
(read phase = observe+decide+validate on device, match = host engine incl. transfers,
write phase = settle+measure on device). Each agent count runs in its own process so that
its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

WORLD_AGENTS = (10_000, 100_000, 1_000_000)


def machine() -> dict:
    """A description of where the numbers were taken."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
    }


SIGNAL_KINDS = ("momentum", "trend_follower", "macd_cross", "bollinger_reversion", "vwap_executor")


def world_config(agents: int, ticks: int, engine: str = "fast", mix: str = "basic", market: str = "two"):
    """``market``: ``two`` symbols in one sector, or the ``default`` market (10 symbols in 5
    sectors with fundamentals, news and short selling). ``mix``: ``basic`` is 1% market
    makers (at least 2 per symbol), the rest noise traders; ``all`` is 1% market makers,
    4% each of the five signal and execution kinds, the rest (79%) noise traders; ``default``
    is the default population (1 maker per 5 noise traders, noise acting on 20-50% of
    ticks) scaled to ``agents``."""
    from qtg.config import Config, to_config

    cfg = Config()
    if market == "two":
        cfg.market.symbols = ["ACME", "BOLT"]  # one sector (the default sectors are for ten)
    makers = max(2 * len(cfg.market.symbols), agents // 100)
    # A float large enough for every agent's opening holdings (noise traders hold 500).
    cfg.market.shares_outstanding = max(cfg.market.shares_outstanding, 2_000 * agents)
    others = {k: {"count": agents * 4 // 100} for k in SIGNAL_KINDS} if mix == "all" else {}
    noise = agents - makers - sum(v["count"] for v in others.values())
    cfg.population = {
        "market_maker": {"count": makers, "quote_size": [50, 150]},
        "noise": {"count": noise, "activity": [0.01, 0.05]},
        **others,
    }
    if mix == "default":  # the default population's kinds and parameters, scaled up
        from qtg.config import DEFAULT_COUNTS

        total = sum(DEFAULT_COUNTS.values())
        counts = {k: agents * v // total for k, v in DEFAULT_COUNTS.items()}
        counts["noise"] += agents - sum(counts.values())
        cfg.population = {k: {"count": v} for k, v in counts.items()}
    cfg.engine.name = engine
    cfg.run.ticks = ticks
    return to_config(cfg)


def bench_world(agents: int, ticks: int, warmup: int = 20, engine: str = "fast", mix: str = "basic",
                market: str = "two") -> dict:
    """Run one world in this process and measure it."""
    import numpy as np

    from qtg.sim import Simulation
    from qtg.world import build_world, make_engine_for

    t0 = time.perf_counter()
    cfg = world_config(agents, ticks, engine, mix, market)
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    n_symbols = world.static.n_symbols
    del world  # the simulation runs on its own copy of the state; free the opening one
    build_s = time.perf_counter() - t0
    for _ in range(warmup):
        sim.step()
    warm_s = time.perf_counter() - t0 - build_s
    seconds, orders, fills = [], [], []
    for _ in range(ticks):
        r = sim.step()
        seconds.append(r.seconds)
        orders.append(r.accepted)
        fills.append(len(r.fills))
    # A separate profiled pass: blocking after each segment shows where time goes.
    sim.stage_seconds.clear()
    profile_ticks = min(ticks, 50)
    for _ in range(profile_ticks):
        sim.step(profile=True)
    ms = np.array(seconds) * 1e3
    return {
        "agents": agents,
        "mix": mix,
        "market": market,
        "symbols": n_symbols,
        "engine": engine,
        "ticks": ticks,
        "ms_per_tick_median": round(float(np.median(ms)), 3),
        "ms_per_tick_p90": round(float(np.percentile(ms, 90)), 3),
        "ticks_per_s": round(1e3 / float(np.median(ms)), 1),
        "orders_per_tick": round(float(np.mean(orders)), 1),
        "fills_per_tick": round(float(np.mean(fills)), 1),
        "orders_per_s": round(float(np.sum(orders)) / float(np.sum(seconds)), 0),
        "ms_by_phase": {
            k: round(v / profile_ticks * 1e3, 3) for k, v in sim.stage_seconds.items()
        },
        "build_s": round(build_s, 2),
        "warmup_s": round(warm_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _world_in_subprocess(agents: int, ticks: int, mix: str, market: str) -> dict:
    cmd = [sys.executable, "-m", "qtg.bench", "--_world-child", str(agents), "--ticks", str(ticks), "--mix", mix,
           "--market", market]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ | {"JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")})
    if out.returncode != 0:
        return {"agents": agents, "error": out.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["engines", "indicators", "world"], help="run one part only")
    ap.add_argument("--agents", type=int, nargs="+", default=list(WORLD_AGENTS))
    ap.add_argument("--ticks", type=int, default=200, help="measured ticks per world (default 200)")
    ap.add_argument("--mix", choices=["basic", "all", "default"], default="basic",
                    help="world population: makers+noise trading 1-5%% of ticks (basic), the seven single-symbol kinds "
                         "(all), or the default population's kinds and parameters scaled up (default)")
    ap.add_argument("--market", choices=["two", "default"], default="two",
                    help="two symbols (default) or the default 10-symbol market with news and shorting")
    ap.add_argument("--orders", type=int, default=200_000, help="engine stream length")
    ap.add_argument("--out", help="also write the JSON to this file")
    ap.add_argument("--_world-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import qtg  # noqa: F401

    if args._world_child:
        print(json.dumps(bench_world(args._world_child, args.ticks, mix=args.mix, market=args.market)))
        return 0

    result: dict = {"machine": machine()}
    if args.only in (None, "engines"):
        from systems.matching.bench import bench_engines

        print("benchmarking engines ...", file=sys.stderr)
        result["engines"] = bench_engines(n=args.orders)
    if args.only in (None, "indicators"):
        from qtg.bench_indicators import bench_indicators

        print("benchmarking indicators ...", file=sys.stderr)
        result["indicators"] = bench_indicators()
    if args.only in (None, "world"):
        result["world"] = []
        for n in args.agents:
            print(f"benchmarking world with {n:,} agents ...", file=sys.stderr)
            result["world"].append(_world_in_subprocess(n, args.ticks, args.mix, args.market))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
