"""How much does the default market vary from seed to seed?

Runs the default market (or any overrides) for several seeds and writes a figure of the
price paths and a JSON table of per-seed statistics: return, realised volatility per
tick, mean quoted spread, volume, and market-maker vs noise-trader P&L.

    python experiments/seed_sweep.py --seeds 8 --ticks 1000
    python experiments/seed_sweep.py --seeds 4 population.noise.count=100

The JSON goes to stdout and to ``<out>/seed_sweep.json``; the figure to
``<out>/seed_sweep.png`` (default ``out = experiments/out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import qtg  # noqa: F401
from components.money import SCALE
from qtg.core.compose import load_config
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder


def run_seed(overrides: list[str], seed: int, ticks: int) -> tuple[dict, np.ndarray]:
    cfg = load_config([*overrides, f"seed={seed}", f"run.ticks={ticks}"])
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    rec = Recorder()
    sim.run(cfg.run.ticks, hooks=[rec])
    h = rec.arrays()
    last = h["last"][:, 0] / SCALE
    two_sided = (h["bid"][:, 0] > 0) & (h["ask"][:, 0] > 0)
    spread = (h["ask"][:, 0] - h["bid"][:, 0])[two_sided] / SCALE
    rets = np.diff(np.log(last))
    eq = h["equity"]
    pnl = {k.name: round(float(eq[-1, j] - eq[0, j]) / SCALE, 2) for j, k in enumerate(sim.static.kinds)}
    stats = {
        "seed": seed,
        "return_pct": round(100 * (last[-1] / last[0] - 1), 3),
        "vol_per_tick_bp": round(1e4 * float(rets.std()), 3),
        "mean_spread": round(float(spread.mean()), 4) if spread.size else None,
        "two_sided_pct": round(100 * float(two_sided.mean()), 2),
        "volume": int(h["volume"][:, 0].sum()),
        "fills": int(h["fills"].sum()),
        "pnl_by_kind": pnl,
        "fill_hash": rec.fill_hash,
    }
    return stats, last


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--ticks", type=int, default=1000)
    ap.add_argument("--out", default="experiments/out")
    ap.add_argument("overrides", nargs="*", help="Hydra-style overrides, e.g. population.noise.count=50")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    rows, paths = [], []
    for seed in tqdm(range(args.seeds), unit="seed"):
        stats, path = run_seed(args.overrides, seed, args.ticks)
        rows.append(stats)
        paths.append(path)

    result = {
        "overrides": args.overrides,
        "ticks": args.ticks,
        "seconds": round(time.perf_counter() - t0, 1),
        "seeds": rows,
        "across_seeds": {
            key: {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4)}
            for key in ("return_pct", "vol_per_tick_bp", "mean_spread", "two_sided_pct", "volume")
            if (v := [r[key] for r in rows if r[key] is not None])
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    (out / "seed_sweep.json").write_text(text + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5))
    for r, path in zip(rows, paths):
        ax.plot(path, lw=0.8, label=f"seed {r['seed']}")
    ax.set_xlabel("tick")
    ax.set_ylabel("last trade price")
    ax.set_title(f"default market, {args.seeds} seeds, {args.ticks} ticks")
    ax.grid(alpha=0.3)
    if args.seeds <= 10:
        ax.legend(fontsize=8, ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(out / "seed_sweep.png", dpi=110)
    print(f"wrote {out / 'seed_sweep.png'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
