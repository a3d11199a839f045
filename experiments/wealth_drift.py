"""Where does the money go in a long run? Cash per strategy kind and fills, chunk by chunk.

Runs the default market (or any overrides) and, every ``--every`` ticks, records each
kind's median and minimum cash, how many of its agents hold less than 100.00, how many
are short, and the fills since the last record. The default market is a closed economy:
the noise traders pay the makers' spread and borrow fees, so their cash drains and the
market trades less and less (see docs/realism.md).

    python experiments/wealth_drift.py --ticks 200000 --every 5000
    python experiments/wealth_drift.py --ticks 50000 population.noise.count=500

One JSON object on stdout: the config's overrides, the machine and a row per record.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from tqdm import tqdm

import qtg  # noqa: F401
from components.money import SCALE
from qtg.bench import machine
from qtg.bench.soak import _Counter
from qtg.core.compose import load_config
from qtg.core.config import ConfigError
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for


def drift(overrides: list[str], ticks: int, every: int) -> dict:
    """The rows of a run of ``ticks`` ticks, one every ``every`` ticks."""
    cfg = load_config([*overrides, "hooks=[]", f"run.ticks={ticks}"])
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    counter, seen, rows = _Counter(), 0, []
    with tqdm(total=ticks, unit="tick", file=sys.stderr, mininterval=1.0) as bar:
        while sim.tick < ticks:
            n = min(every, ticks - sim.tick)
            sim.run(n, hooks=[counter])
            bar.update(n)
            cash = np.asarray(sim.state.wallet.cash) / SCALE
            pos = np.asarray(sim.state.wallet.position)
            kinds = {}
            for k in world.static.kinds:
                c, p = cash[k.start:k.start + k.count], pos[k.start:k.start + k.count]
                kinds[k.name] = {"median_cash": round(float(np.median(c)), 2), "min_cash": round(float(c.min()), 2),
                                 "below_100": int((c < 100).sum()), "short": int((p < 0).any(axis=1).sum())}
            rows.append({"tick": sim.tick, "fills": counter.fills - seen, "kinds": kinds,
                         "last": [round(int(x) / SCALE, 2) for x in np.asarray(sim.state.market.last)]})
            seen = counter.fills
    return {"experiment": "wealth_drift", "overrides": overrides, "ticks": ticks, "every": every,
            "rows": rows, "machine": machine()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ticks", type=int, default=200_000)
    ap.add_argument("--every", type=int, default=5_000)
    ap.add_argument("overrides", nargs="*", help="config overrides, e.g. population.noise.count=500")
    args = ap.parse_args(argv)
    if args.ticks < 1 or args.every < 1:
        print("qtg: --ticks and --every must be >= 1", file=sys.stderr)
        return 2
    try:
        result = drift(args.overrides, args.ticks, args.every)
    except ConfigError as e:
        print(f"qtg: config error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
