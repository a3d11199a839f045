"""``python -m qtg.bench.storage``: what the storage hook costs the simulation.

The same world (``population=<preset>``, default ``seed_100k``) is built twice and run
for ``warmup + ticks`` ticks, first without hooks and then with :class:`qtg.hooks.storage.Storage`
writing into a temporary run directory (the default ``storage`` config). Per tick the
wall time between consecutive ``on_tick`` calls is measured (the tick itself plus every
hook's work, including waiting for a full writer queue); the final flush in ``on_end`` is
reported separately. Printed as JSON::

    python -m qtg.bench.storage
    python -m qtg.bench.storage --population small --ticks 500
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


class _Clock:
    """Wall time between consecutive on_tick calls (put it last among the hooks)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.t_end = 0.0

    def on_start(self, sim) -> None:
        self.stamps = [time.perf_counter()]

    def on_tick(self, sim, r) -> None:
        self.stamps.append(time.perf_counter())

    def on_end(self, sim) -> None:
        self.t_end = time.perf_counter()


def _run(cfg, ticks: int, warmup: int, run_dir: Path | None) -> dict:
    from qtg.core.config import config_dict
    from qtg.core.sim import Simulation
    from qtg.core.world import build_world, make_engine_for
    from qtg.hooks.storage import Storage

    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    sim.run(warmup)  # compile and settle, without hooks
    clock = _Clock()
    hooks = [clock]
    storage = None
    if run_dir is not None:
        storage = Storage(run_dir / cfg.storage.file, cfg.storage, config_dict(cfg), cfg.seed)
        hooks = [storage, clock]  # clock last: it sees storage's on_tick; its on_end comes after storage's
    t0 = time.perf_counter()
    sim.run(ticks, hooks=hooks)
    wall = time.perf_counter() - t0
    ms = np.diff(clock.stamps) * 1000
    # A tick 10x slower than the median is a one-off stall (a JAX recompile when a padded
    # buffer grows): both runs have them, so they are counted apart from the steady cost.
    stall = ms > 10 * np.median(ms)
    end_s = clock.t_end - clock.stamps[-1]
    out = {
        "ms_per_tick": {"median": round(float(np.median(ms)), 3), "p90": round(float(np.percentile(ms, 90)), 3),
                        "mean": round(float(ms.mean()), 3), "mean_without_stalls": round(float(ms[~stall].mean()), 3)},
        "stalls": int(stall.sum()),
        "stall_s": round(float(ms[stall].sum()) / 1000, 3),
        "wall_s": round(wall, 3),
        "end_s": round(end_s, 3),
        # Everything the run cost except the stalls: ticks, hooks, the final flush.
        "busy_s": round(float(ms[~stall].sum()) / 1000 + end_s, 3),
    }
    if storage is not None:
        out["storage"] = storage.summary()
    return out


def bench_storage(population: str = "seed_100k", ticks: int = 200, warmup: int = 30) -> dict:
    """Storage off vs on for the same world: ms per tick (median, p90, mean), wall time
    of the measured ticks including the final flush, the on/off ratios, and what was
    written (rows, rows/s of the writer thread, database bytes).

    ``ratio_total`` is the steady cost: (ticks + final flush) per tick, on over off,
    leaving out one-off stalls (ticks over 10x the median: JAX recompiling a segment
    when a padded buffer grows, which happens in both runs)."""
    from qtg.core.compose import load_config

    cfg = load_config([f"population={population}", "hooks=[]"])
    off = _run(cfg, ticks, warmup, None)
    with tempfile.TemporaryDirectory(prefix="qtg-bench-storage-") as tmp:
        on = _run(cfg, ticks, warmup, Path(tmp))
    st = on.pop("storage")
    return {
        "population": population,
        "ticks": ticks,
        "warmup": warmup,
        "storage_config": {k: getattr(cfg.storage, k) for k in ("batch_ticks", "queue_batches", "portfolio_every",
                                                                "candles", "orders")},
        "off": off,
        "on": on,
        "ratio_median": round(on["ms_per_tick"]["median"] / off["ms_per_tick"]["median"], 3),
        "ratio_p90": round(on["ms_per_tick"]["p90"] / off["ms_per_tick"]["p90"], 3),
        # Steady cost per tick including the final flush, stalls excluded (the target: <= 2).
        "ratio_total": round((on["busy_s"] / max(1, ticks - on["stalls"]))
                             / (off["busy_s"] / max(1, ticks - off["stalls"])), 3),
        "ratio_wall": round(on["wall_s"] / off["wall_s"], 3),
        "rows": st["rows"],
        "rows_per_tick": round(st["rows"] / ticks, 1),
        "writer_rows_per_s": st["rows_per_s"],
        "writer_seconds": st["writer_seconds"],
        "db_bytes": st["bytes"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench.storage", description=__doc__.split("\n\n")[0])
    ap.add_argument("--population", default="seed_100k")
    ap.add_argument("--ticks", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=30)
    args = ap.parse_args(argv)
    print(json.dumps(bench_storage(args.population, args.ticks, args.warmup), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
