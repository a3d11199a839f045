"""``python -m qtg.bench --only rollout`` at a tiny shape: one row per market and count,
its throughput consistent with its time per tick, and the state's bytes per market those
of one market's state."""

from __future__ import annotations

import jax
import numpy as np

from qtg.bench import rollout


def test_bench_rows_per_market_and_count():
    rows = rollout.bench_rollout(markets=(2,), names=("small",), ticks=3, repeats=1)
    assert [(r["market"], r["markets"], r["agents"], r["symbols"], r["capacity"]) for r in rows] == [
        ("small", 2, 32, 1, 32)]
    r = rows[0]
    assert r["market_ticks_per_s"] > 0 and r["compile_s"] > 0 and r["book_full"] == 0
    assert abs(r["market_ticks_per_s"] - 2 / (r["ms_per_tick"] / 1e3)) <= 0.01 * r["market_ticks_per_s"] + 2
    _, state = rollout.market_world("small")
    books = state.books
    assert r["bytes_per_market"] > sum(np.asarray(a).nbytes for a in jax.tree.leaves(books)) > 0
    assert r["fills_per_market_tick"] > 0
