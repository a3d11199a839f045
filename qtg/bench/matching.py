"""Throughput of the host matching engines on the standard stream.

``python -m qtg.bench.matching [--n 200000] [--seed 0] [--repeats 3] [--symbols 1]
[--tick-rows 2000]``
prints :func:`bench_engines`'s dict as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numba
import numpy as np

from components.orders import MatchResult, OrderBatch
from systems.matching import fast as fast_module
from systems.matching.exact import ExactEngine
from systems.matching.fast import FastEngine
from systems.matching.stream import TICK, standard_stream


def arrays_equal(a, b) -> bool:
    """Whether two struct-of-arrays dataclasses hold identical fields (shape, dtype, values)."""
    for name, x in a.__dict__.items():
        y = getattr(b, name)
        if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
            return False
    return True


def results_equal(a: MatchResult, b: MatchResult) -> bool:
    """Whether two match results are identical: outcomes, fills and updates."""
    return all(arrays_equal(getattr(a, g), getattr(b, g)) for g in ("outcomes", "fills", "updates"))


def _timed(make, batch: OrderBatch, repeats: int) -> tuple[list[float], MatchResult]:
    """Seconds of ``make().process(batch)`` on a fresh engine, ``repeats`` times."""
    times, result = [], None
    for _ in range(repeats):
        engine = make()
        t0 = time.perf_counter()
        result = engine.process(batch)
        times.append(time.perf_counter() - t0)
    return times, result


def bench_engines(
    n: int = 200_000, seed: int = 0, repeats: int = 3, n_symbols: int = 1, tick_rows: int = 2_000
) -> dict:
    """Time both engines on ``standard_stream(n, n_symbols, seed)``, one batch per run.

    Each run uses a fresh engine (default capacities; any growth is part of the time).
    The fast engine's first call (compiling, or loading numba's on-disk cache) is timed
    separately on a 100-row batch before the timed runs. The fast engine is also timed
    fed ``tick_rows`` rows per call, as the world calls it once per tick.

    Returns:
        JSON-able dict: ``orders``, ``exact_orders_per_s`` and ``fast_orders_per_s``
        (best of ``repeats``), the median figures, ``fast_first_call_s``, ``fills``,
        ``identical_fills`` and ``identical_results`` (exact vs fast on the stream),
        ``fast_per_tick_orders_per_s`` and ``fast_per_tick_call_us`` (per-tick feeding),
        ``resting_after`` and some context.
    """
    tick = np.full(n_symbols, TICK, np.int64)
    batch = standard_stream(n, n_symbols=n_symbols, seed=seed)

    hits_before = sum(fast_module._process_kernel.stats.cache_hits.values())
    t0 = time.perf_counter()
    FastEngine(tick).process(batch.take(np.arange(min(100, n))))
    first_call = time.perf_counter() - t0
    cache_hit = sum(fast_module._process_kernel.stats.cache_hits.values()) > hits_before

    exact_times, exact_result = _timed(lambda: ExactEngine(tick), batch, repeats)
    fast_times, fast_result = _timed(lambda: FastEngine(tick), batch, repeats)

    # The world's pattern: one call per tick of ``tick_rows`` rows (slicing not timed).
    ticks = [batch.take(np.arange(a, min(a + tick_rows, n))) for a in range(0, n, tick_rows)]
    per_tick = []
    for _ in range(repeats):
        engine = FastEngine(tick)
        t0 = time.perf_counter()
        for part in ticks:
            engine.process(part)
        per_tick.append(time.perf_counter() - t0)
    engine = ExactEngine(tick)
    engine.process(batch)
    kinds = np.bincount(batch.kind, minlength=6)
    return {
        "orders": n,
        "symbols": n_symbols,
        "seed": seed,
        "repeats": repeats,
        "exact_orders_per_s": round(n / min(exact_times)),
        "fast_orders_per_s": round(n / min(fast_times)),
        "exact_median_orders_per_s": round(n / float(np.median(exact_times))),
        "fast_median_orders_per_s": round(n / float(np.median(fast_times))),
        "speedup": round(min(exact_times) / min(fast_times), 1),
        "fast_per_tick_orders_per_s": round(n / min(per_tick)),
        "fast_per_tick_call_us": round(1e6 * min(per_tick) / len(ticks), 1),
        "tick_rows": tick_rows,
        "fast_first_call_s": round(first_call, 3),
        "fast_first_call_from_cache": cache_hit,
        "fills": len(exact_result.fills),
        "fill_qty": int(exact_result.fills.qty.sum()),
        "identical_fills": arrays_equal(exact_result.fills, fast_result.fills),
        "identical_results": results_equal(exact_result, fast_result),
        "resting_after": engine.n_resting(),
        "levels_after": engine.stats()["levels"],
        "mix": {"limit": int(kinds[0]), "market": int(kinds[1]), "cancel": int(kinds[4])},
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numba": numba.__version__,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=1)
    parser.add_argument("--tick-rows", type=int, default=2_000)
    args = parser.parse_args(argv)
    result = bench_engines(args.n, args.seed, args.repeats, args.symbols, args.tick_rows)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
