"""The world benchmark: ms per tick of a whole simulation by agent count, each count in its
own process so that its peak memory is its own (``python -m qtg.bench --only world``)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

WORLD_AGENTS = (10_000, 100_000, 1_000_000)


SIGNAL_KINDS = ("momentum", "trend_follower", "macd_cross", "bollinger_reversion", "vwap_executor")


def world_config(agents: int, ticks: int, engine: str = "fast", mix: str = "basic", market: str = "two",
                 capacity: int | None = None):
    """``market``: ``two`` symbols in one sector, or the ``default`` market (10 symbols in 5
    sectors with fundamentals, news and short selling). ``mix``: ``basic`` is 1% market
    makers (at least 2 per symbol), the rest noise traders; ``all`` is 1% market makers,
    4% each of the five signal and execution kinds, the rest (79%) noise traders; ``default``
    is the default population (1 maker per 5 noise traders, noise acting on 20-50% of
    ticks) scaled to ``agents``."""
    from qtg.core.config import Config, to_config

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
        default = {k: v["count"] for k, v in Config().population.items() if v["count"]}
        total = sum(default.values())
        counts = {k: agents * v // total for k, v in default.items()}
        counts["noise"] += agents - sum(counts.values())
        cfg.population = {k: {"count": v} for k, v in counts.items()}
    cfg.engine.name = engine
    if capacity is not None:  # the device engine's orders per book side
        cfg.engine.capacity = capacity
    cfg.run.ticks = ticks
    return to_config(cfg)


def tiers_population(agents: int) -> dict:
    """Counts of ``conf/population/seed_100k.yaml`` (100,000 agents over three tiers)
    scaled to ``agents``: 7.5% tier 1, 5% tier 2, 87.5% background pool."""
    from pathlib import Path

    from omegaconf import OmegaConf

    preset = OmegaConf.to_container(
        OmegaConf.load(Path(__file__).resolve().parents[2] / "conf" / "population" / "seed_100k.yaml"))
    return {k: {**v, "count": max(1, round(v["count"] * agents / 100_000))} for k, v in preset.items()}


def bench_world(agents: int, ticks: int, warmup: int = 20, engine: str = "fast", mix: str = "basic",
                market: str = "two", capacity: int | None = None) -> dict:
    """Run one world in this process and measure it."""
    import numpy as np

    from qtg.core.sim import make_simulation
    from qtg.core.world import build_world, make_engine_for

    t0 = time.perf_counter()
    cfg = world_config(agents, ticks, engine, mix, market, capacity)
    world = build_world(cfg)
    sim = make_simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
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
        **({"book_full": sim.engine.stats()["book_full"], "capacity": sim.engine.capacity} if engine == "device" else {}),
    }


def world_in_subprocess(agents: int, ticks: int, mix: str, market: str, engine: str = "fast",
                        capacity: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "qtg.bench", "--_world-child", str(agents), "--ticks", str(ticks), "--mix", mix,
           "--market", market, "--engine", engine, *(["--capacity", str(capacity)] if capacity else [])]
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
