"""``python -m qtg.bench.indicators``: the indicators' cost per tick, printed as JSON.

One jitted call per tick absorbs a bar for every symbol and reads every indicator
(``systems.indicators.update_and_read``), on a random walk. Reported: the median and p90
wall time of that call (blocking on its outputs) after a warm-up, and the compile time.

    python -m qtg.bench.indicators
    python -m qtg.bench.indicators --symbols 100 --period-sets 8 --ticks 2000
"""

from __future__ import annotations

import argparse
import json
import time

import qtg  # noqa: F401  (x64 on)


def bench_spec(period_sets: int):
    """``period_sets`` distinct period sets of every indicator kind, typical lengths."""
    from components.indicators import IndicatorSpec

    n = period_sets
    short = tuple(5 + 5 * i for i in range(n))  # 5, 10, ... 5n
    return IndicatorSpec(
        sma=tuple(10 * (i + 1) for i in range(n)),  # 10 .. 10n
        ema=short,
        rsi=tuple(7 * (i + 1) for i in range(n)),
        macd=tuple((6 + 2 * i, 20 + 3 * i, 9) for i in range(n)),
        bollinger=tuple((10 + 5 * i, 2.0) for i in range(n)),
        atr=tuple(7 * (i + 1) for i in range(n)),
    )


def bench_indicators(n_symbols: int = 10, period_sets: int = 8, ticks: int = 2000) -> dict:
    """ms per tick of one jitted update+read of all indicators, after warm-up. JSON-able."""
    import jax
    import numpy as np

    from systems.indicators import init_indicators, update_and_read

    spec = bench_spec(period_sets)
    rng = np.random.default_rng(0)
    close = 100.0 + np.cumsum(rng.normal(0.0, 0.1, (ticks, n_symbols)), axis=0)
    spread = np.abs(rng.normal(0.0, 0.05, (2, ticks, n_symbols)))
    bars = np.stack([close, close + spread[0], close - spread[1]], axis=1)  # [T, 3, S]
    bars = [jax.device_put(b) for b in bars]  # host -> device before timing

    @jax.jit
    def step(state, bar):  # bar f64[3, S]: close, high, low
        return update_and_read(spec, state, bar[0], bar[1], bar[2])

    state = init_indicators(spec, n_symbols)
    t0 = time.perf_counter()
    out = jax.block_until_ready(step(state, bars[0]))
    compile_s = time.perf_counter() - t0
    state = out[0]
    warmup = min(100, ticks // 10)
    times = []
    for t in range(1, ticks):
        t0 = time.perf_counter()
        state, ind = jax.block_until_ready(step(state, bars[t]))
        if t > warmup:
            times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    leaves_in = len(jax.tree.leaves((state, bars[0])))
    leaves_out = len(jax.tree.leaves((state, ind)))
    return {
        "n_symbols": n_symbols,
        "period_sets": period_sets,
        "ticks": ticks,
        "window": spec.window,
        "ms_per_tick_median": round(float(np.median(ms)), 4),
        "ms_per_tick_p90": round(float(np.percentile(ms, 90)), 4),
        "compile_s": round(compile_s, 3),
        "leaves_in": leaves_in,
        "leaves_out": leaves_out,
        "all_ready": bool(all(bool(np.asarray(r).all()) for r in _ready_flags(ind))),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }


def _ready_flags(ind) -> list:
    return [ind.sma.ready, ind.ema.ready, ind.rsi.ready, ind.macd.ready, ind.bollinger.ready, ind.atr.ready]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--period-sets", type=int, default=8)
    ap.add_argument("--ticks", type=int, default=2000)
    a = ap.parse_args(argv)
    print(json.dumps(bench_indicators(a.symbols, a.period_sets, a.ticks), indent=2))


if __name__ == "__main__":
    main()
