"""``python -m qtg.bench``: the project's benchmarks, printed as JSON.

    python -m qtg.bench                       # engines + 10k/100k/1M agents (several minutes)
    python -m qtg.bench --only engines
    python -m qtg.bench --only indicators
    python -m qtg.bench --only world --agents 10000 100000 --ticks 200
    python -m qtg.bench --only world --agents 100000 --mix all   # the seven single-symbol kinds
    python -m qtg.bench --only world --agents 10000 --market default --mix all  # 10 symbols, news, shorts
    python -m qtg.bench --only world --mix tiers --market default --agents 10000 100000 1000000 --plot scaling.png
    python -m qtg.bench --only wake           # the tier 2 wake mask at 10k / 100k / 1M rows
    python -m qtg.bench --only storage        # seed_100k with the storage hook off and on
    python -m qtg.bench --only tui            # ticks/s with and without the terminal view
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
    if mix == "tiers":  # the seed_100k preset (three tiers) scaled to `agents`
        cfg.population = tiers_population(agents)
        cfg.market.shares_outstanding = max(10_000_000, 12 * agents)
    if mix == "default":  # the default population's kinds and parameters, scaled up
        from qtg.config import DEFAULT_COUNTS

        total = sum(DEFAULT_COUNTS.values())
        counts = {k: agents * v // total for k, v in DEFAULT_COUNTS.items()}
        counts["noise"] += agents - sum(counts.values())
        cfg.population = {k: {"count": v} for k, v in counts.items()}
    cfg.engine.name = engine
    cfg.run.ticks = ticks
    return to_config(cfg)


def tiers_population(agents: int) -> dict:
    """Counts of ``conf/population/seed_100k.yaml`` (100,000 agents over three tiers)
    scaled to ``agents``: 7.5% tier 1, 5% tier 2, 87.5% background pool."""
    from pathlib import Path

    from omegaconf import OmegaConf

    preset = OmegaConf.to_container(
        OmegaConf.load(Path(__file__).resolve().parent.parent / "conf" / "population" / "seed_100k.yaml"))
    return {k: {**v, "count": max(1, round(v["count"] * agents / 100_000))} for k, v in preset.items()}


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
        "rows": sim.static.n_agents,  # agents with rows (tiers 1 and 2); the rest are the pool
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


def plot_scaling(rows: list[dict], path: str, title: str) -> None:
    """ms/tick (median, p90 as a bar) against agents on log-log axes, with the line of
    linear growth through the smallest size: points on or under it grow no faster."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    ok = [r for r in rows if "ms_per_tick_median" in r]
    if not ok:
        return
    n = np.array([r["agents"] for r in ok], float)
    med = np.array([r["ms_per_tick_median"] for r in ok])
    p90 = np.array([r["ms_per_tick_p90"] for r in ok])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.errorbar(n, med, yerr=[np.zeros_like(med), p90 - med], fmt="o-", capsize=4, label="ms per tick (median, p90)")
    ax.plot(n, med[0] * n / n[0], "--", color="grey", label="linear in agents")
    for x, y in zip(n, med):
        ax.annotate(f"{y:.1f} ms", (x, y), textcoords="offset points", xytext=(6, -12), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("agents (all tiers)")
    ax.set_ylabel("ms per tick")
    ax.set_title(f"Tick time against agents ({title})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["engines", "indicators", "world", "wake", "storage", "tui"], help="run one part only")
    ap.add_argument("--agents", type=int, nargs="+", default=list(WORLD_AGENTS))
    ap.add_argument("--ticks", type=int, default=200, help="measured ticks per world (default 200)")
    ap.add_argument("--mix", choices=["basic", "all", "default", "tiers"], default="basic",
                    help="world population: makers+noise trading 1-5%% of ticks (basic), the seven single-symbol kinds "
                         "(all), the default population's kinds and parameters scaled up (default), or the "
                         "seed_100k preset's three tiers scaled to --agents (tiers)")
    ap.add_argument("--plot", help="with --only world: write ms/tick against agents (log-log) to this PNG")
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
    if args.only == "wake":
        from qtg.bench_wake import bench_wake

        print("benchmarking the wake mask ...", file=sys.stderr)
        result["wake"] = bench_wake()
    if args.only == "storage":
        from qtg.bench_storage import bench_storage

        print("benchmarking the storage hook at seed_100k ...", file=sys.stderr)
        result["storage"] = bench_storage(ticks=args.ticks)
    if args.only == "tui":
        from qtg.bench_tui import WORLDS, measure

        result["tui"] = []
        for name, (overrides, ticks) in WORLDS.items():
            print(f"benchmarking the terminal view on the {name} world ...", file=sys.stderr)
            result["tui"].append(measure(name, overrides, ticks, 7, 10.0, warmup=min(ticks, 200)))
    if args.only in (None, "world"):
        result["world"] = []
        for n in args.agents:
            print(f"benchmarking world with {n:,} agents ...", file=sys.stderr)
            result["world"].append(_world_in_subprocess(n, args.ticks, args.mix, args.market))
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
