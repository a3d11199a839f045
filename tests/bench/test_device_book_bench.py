"""``python -m qtg.bench --only device_book`` at tiny shapes: one row per capacity and book
count, with the share of BOOK_FULL refusals equal to what the device book returns."""

from __future__ import annotations

import numpy as np

from qtg.bench import device_book


def test_stream_holds_limits_markets_and_cancels_of_earlier_orders():
    s = device_book.stream(np.random.default_rng(0), 3, 500)
    assert all(v.shape == (3, 500) for v in s.values())
    assert set(np.unique(s["kind"]).tolist()) == {0, 1, 4}
    cancel = s["kind"] == 4
    assert (s["id"][cancel] < np.broadcast_to(np.arange(1, 501), (3, 500))[cancel]).all()
    assert (s["price"] % device_book.TICK == 0).all() and (s["qty"] > 0).all()


def test_bench_rows_per_capacity_and_books():
    rows = device_book.bench_device_book(books=(1, 3), capacities=(2,), orders=40, repeats=1)
    assert [(r["capacity"], r["books"]) for r in rows] == [(2, 1), (2, 3)]
    for r in rows:
        assert r["orders_per_s"] > 0 and r["compile_s"] > 0
        assert 0 < r["book_full_share"] < 1  # two slots a side: limit orders soon find a side full
