"""Throughput of the device book (``systems/matching/device.py``): orders per second of
one jitted ``vmap`` over books of a ``lax.scan`` over each book's orders.

    python -m qtg.bench --only device_book
    python -m qtg.bench.device_book --books 1 64 1024 --capacity 32 128 --orders 256

Each book gets its own random stream (:func:`stream`): limit orders around a fixed mid
(70%), market orders (10%) and cancels of the book's earlier orders (20%), three agents,
self-trade prevention ``CANCEL_MAKER``. Reported per capacity and book count: orders/s
(all books together; median of ``repeats`` timed calls after one compiling call), the
compile time, and the share of orders refused with ``BOOK_FULL`` (a full side).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

TICK = 100


def stream(rng: np.random.Generator, books: int, n: int) -> dict[str, np.ndarray]:
    """``[books, n]`` order fields (the :class:`~systems.matching.device.Order` layout)."""
    shape = (books, n)
    u = rng.random(shape)
    kind = np.where(u < 0.7, 0, np.where(u < 0.8, 1, 4)).astype(np.int8)  # LIMIT, MARKET, CANCEL
    side = rng.integers(0, 2, shape).astype(np.int8)
    # a buy below the mid of 100 ticks, a sell above it, sometimes through it
    offset = rng.integers(-2, 10, shape)
    price = (np.where(side == 0, 100 - offset, 100 + offset) * TICK).astype(np.int64)
    ids = np.broadcast_to(np.arange(1, n + 1, dtype=np.int64), shape).copy()
    back = rng.integers(1, 40, shape)
    target = np.maximum(ids - back, 1)
    return {"valid": np.ones(shape, bool), "id": np.where(kind == 4, target, ids),
            "agent": rng.integers(0, 3, shape).astype(np.int32), "side": side, "kind": kind,
            "price": price, "qty": rng.integers(1, 10, shape).astype(np.int64)}


def bench_device_book(books=(1, 64, 1024), capacities=(32, 128), orders: int = 256,
                      repeats: int = 3, seed: int = 0) -> list[dict]:
    """One row per (capacity, books): ``orders_per_s``, ``compile_s``, ``book_full_share``."""
    import jax
    import jax.numpy as jnp

    from components.orders import STP, Reason
    from systems.matching import device

    rows = []
    for capacity in capacities:
        for n_books in books:
            fields = stream(np.random.default_rng([seed, capacity, n_books]), n_books, orders)
            batch = device.Order(**{k: jnp.asarray(v) for k, v in fields.items()})
            empty = jax.tree.map(lambda a, k=n_books: jnp.stack([a] * k), device.empty_book(capacity))
            run = jax.jit(jax.vmap(lambda b, o: device.process_orders(b, o, TICK, int(STP.CANCEL_MAKER))))
            t0 = time.perf_counter()
            _, steps = jax.block_until_ready(run(empty, batch))
            compile_s = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                jax.block_until_ready(run(empty, batch))
                times.append(time.perf_counter() - t0)
            sec = float(np.median(times))
            rows.append({"capacity": capacity, "books": n_books, "orders_per_book": orders,
                         "orders_per_s": round(n_books * orders / sec), "seconds": round(sec, 6),
                         "compile_s": round(compile_s, 3),
                         "book_full_share": round(float(np.mean(np.asarray(steps.reason) == int(Reason.BOOK_FULL))), 4)})
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m qtg.bench.device_book", description=__doc__.split("\n\n")[0])
    ap.add_argument("--books", type=int, nargs="+", default=[1, 64, 1024])
    ap.add_argument("--capacity", type=int, nargs="+", default=[32, 128])
    ap.add_argument("--orders", type=int, default=256, help="orders per book")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import qtg  # noqa: F401  (int64 on)
    from qtg.bench import machine

    print(json.dumps({"machine": machine(), "device_book": bench_device_book(
        args.books, args.capacity, args.orders, args.repeats)}, indent=2))


if __name__ == "__main__":
    main()
