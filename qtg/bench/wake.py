"""``python -m qtg.bench.wake``: the cost of the tier 2 wake mask per tick, printed as JSON.

One jitted call per tick evaluates ``systems.strategies._wake.wake_mask`` over every row
(price crossings, timers, news subscriptions) and applies the cheap write-phase updates a
kind makes every tick: re-arm the timers that fired, re-centre the thresholds that fired
around the close, remember the close (``observe``). A second jitted call evaluates the mask
alone (``mask_ms_*``). Rows are a mix: a quarter threshold pairs, a quarter timers, a
quarter news subscriptions on their own symbol, a quarter sector news anywhere plus a
timer. Prices follow a random walk on a 0.01 grid; an event of a
random kind lands on a random symbol every 10 ticks. Reported per size: the median and p90
wall time of the mask + update call and of the mask alone (blocking on the outputs) after a
warm-up, nanoseconds per row (mask + update), the fraction of rows woken per tick, and the
compile time.

    python -m qtg.bench.wake
    python -m qtg.bench.wake --rows 10000 100000 1000000 --calls 200
"""

from __future__ import annotations

import argparse
import json
import time

import qtg  # noqa: F401  (x64 on)

SIZES = (10_000, 100_000, 1_000_000)


def bench_rows(n: int, calls: int = 200, n_symbols: int = 10, warmup: int = 20) -> dict:
    """ms per tick of one jitted mask + update over ``n`` rows, after warm-up. JSON-able."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from components.fundamentals import EVENT_KINDS, NEVER
    from systems.strategies import _wake as W

    rng = np.random.default_rng(0)
    s, k = n_symbols, len(EVENT_KINDS)
    ticks = warmup + calls + 2  # tick 0 is the start; one call compiles
    tick_size = 100
    steps = rng.choice([-1, 0, 1], size=(ticks, s), p=[0.3, 0.4, 0.3])
    closes = 1_000_000 + tick_size * np.cumsum(steps, axis=0)  # i64 units
    news = np.full((ticks, k, s), NEVER, np.int64)
    for t in range(10, ticks, 10):
        news[t:, rng.integers(k), rng.integers(s)] = t - 1  # seen at tick t
    sector_of = jnp.asarray(np.arange(s) // 2, jnp.int32)

    group = np.arange(n) % 4
    symbol = rng.integers(0, s, n)
    every = np.where((group == 1) | (group == 3), rng.integers(5, 50, n), 0)
    w = W.make_wake(
        symbol, every=every, next_tick=1 + rng.integers(0, 50, n),
        events=np.where(group == 2, 0b0011, np.where(group == 3, 0b1000, 0)),
        scope=np.where(group == 3, W.ANY, W.OWN),
    )
    band = np.where(group == 0, rng.integers(1, 4, n) * tick_size, 0)
    w = w.replace(
        above=jnp.asarray(np.where(group == 0, 1_000_000 + band, 0)),
        below=jnp.asarray(np.where(group == 0, 1_000_000 - band, 0)),
        seen=jnp.asarray(closes[0][symbol]),
    )
    gap = jnp.asarray(band)
    inputs = [(jax.device_put(closes[t]), jax.device_put(news[t]), jnp.asarray(t, jnp.int64))
              for t in range(1, ticks)]

    def update(w, close, news_tick, tick):
        last = close[w.symbol]
        fired, reason = W.wake_mask(w, last, w.seen, tick, news_tick, sector_of)
        w = W.rearm(w, fired & W.has(reason, W.INTERVAL), tick)
        moved = fired & W.has(reason, W.ABOVE | W.BELOW)
        w = W.set_below(W.set_above(w, moved, last + gap), moved, last - gap)
        return W.observe(w, fired, reason, tick, last), fired.sum()

    def mask(w, close, news_tick, tick):
        return W.wake_mask(w, close[w.symbol], w.seen, tick, news_tick, sector_of)

    # Not donated: on a CPU, updating the ten condition arrays in place measured ~2x slower
    # at 1M rows than writing fresh ones.
    step = jax.jit(update)
    mask_only = jax.jit(mask)
    t0 = time.perf_counter()
    w, woken = jax.block_until_ready(step(w, *inputs[0]))
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(mask_only(w, *inputs[0]))
    times, mask_times, fired = [], [], []
    for i, args in enumerate(inputs[1:]):
        t0 = time.perf_counter()
        jax.block_until_ready(mask_only(w, *args))
        t1 = time.perf_counter()
        w, woken = jax.block_until_ready(step(w, *args))
        if i >= warmup:
            mask_times.append(t1 - t0)
            times.append(time.perf_counter() - t1)
            fired.append(int(woken))
    ms, mask_ms = np.array(times) * 1e3, np.array(mask_times) * 1e3
    return {
        "rows": n,
        "calls": len(times),
        "ms_median": round(float(np.median(ms)), 4),
        "ms_p90": round(float(np.percentile(ms, 90)), 4),
        "mask_ms_median": round(float(np.median(mask_ms)), 4),
        "mask_ms_p90": round(float(np.percentile(mask_ms, 90)), 4),
        "ns_per_row": round(float(np.median(ms)) * 1e6 / n, 3),
        "woken_fraction": round(float(np.mean(fired)) / n, 4),
        "compile_s": round(compile_s, 3),
        "n_symbols": s,
        "jax": jax.__version__,
        "backend": jax.default_backend(),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=list(SIZES))
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--symbols", type=int, default=10)
    a = ap.parse_args(argv)
    for n in a.rows:
        print(json.dumps(bench_rows(n, a.calls, a.symbols)))



def bench_wake(sizes=SIZES, calls: int = 200) -> list[dict]:
    """``bench_rows`` for each size (``python -m qtg.bench --only wake``)."""
    return [bench_rows(n, calls) for n in sizes]


if __name__ == "__main__":
    main()
