"""match: the tick's accepted orders, in a seeded random arrival order, through the engine.

This is the one host stage of the tick. It hands the engine only the valid rows, shuffled
so that no agent has a standing priority, and packs what the write phase needs into a
few fixed-shape arrays (padded to a power-of-two bucket so the jitted write phase compiles
once per bucket, not once per tick).
"""

from __future__ import annotations

import numpy as np

from components.orders import MatchResult, OrderBatch, Status

FILL_FIELDS = ("taker_agent", "maker_agent", "symbol", "side", "price", "qty")
"""Rows of the packed fills array handed to the write phase."""
UPDATE_FIELDS = ("id", "remaining", "price", "symbol")
"""Rows of the packed order-updates array."""
BOOK_FIELDS = ("bid_price", "bid_qty", "ask_price", "ask_qty")
"""Rows of the packed top-of-book array."""
N_STATUS = len(Status)


MIN_BUCKET = 1024
"""The smallest padded length of the fills and updates. Every bucket they reach compiles the
write phase again (about 2-5 s each): starting at 64, a 300-tick run of the default market
passed through five of them; from 1,024 it compiles once. Padding rows cost nothing
measurable, and bigger worlds outgrow this bucket in their first ticks anyway."""


def bucket(n: int, minimum: int = MIN_BUCKET) -> int:
    """Smallest power of two >= max(n, minimum)."""
    return max(minimum, 1 << max(0, int(n) - 1).bit_length())


def arrival_order(valid: np.ndarray, seed: int) -> np.ndarray:
    """Indices of the valid rows in a random order fixed by ``seed``."""
    idx = np.flatnonzero(valid)
    return idx[_shuffled_positions(idx.shape[0], seed)]


def _shuffled_positions(n: int, seed: int) -> np.ndarray:
    # Generator.permutation(n) is Generator.shuffle applied to arange(n): the same swaps
    # whatever the contents, so idx[permutation(n)] is idx shuffled with the same seed.
    return np.random.Generator(np.random.PCG64(seed)).permutation(n)


def arrive(orders: OrderBatch, seed: int) -> tuple[np.ndarray, OrderBatch]:
    """``arrival_order(orders.valid, seed)`` and the rows in that order.

    The valid rows are first gathered in batch order (a streaming pass over the long,
    mostly empty batch), then permuted within those few rows, which stay in cache: at a
    million agents (313,680 rows, 43,000 valid) this takes 2.0 ms where gathering the
    shuffled rows straight out of the batch took 2.9.
    """
    idx = np.flatnonzero(orders.valid)
    perm = _shuffled_positions(idx.shape[0], seed)
    compact = orders.take(idx)
    return idx[perm], compact.take(perm)


def _pack(columns, names: tuple[str, ...], fill: int) -> np.ndarray:
    """Fields ``names`` of a struct-of-arrays as rows of one i64[len(names), bucket(n)]
    array; padding columns hold ``fill``."""
    n = getattr(columns, names[0]).shape[0]
    packed = np.full((len(names), bucket(n)), fill, np.int64)
    for row, name in enumerate(names):
        packed[row, :n] = getattr(columns, name)
    return packed


def match_orders(engine, orders: OrderBatch, seed: int) -> tuple[MatchResult, np.ndarray, OrderBatch, dict]:
    """Run the engine over the valid rows of ``orders`` (host NumPy arrays).

    Returns the engine's MatchResult (rows in arrival order), the batch row index of each
    arrival, the orders as the engine saw them (arrival order), and the packed arrays for the write phase:
    ``fills`` i64[6, F], ``updates`` i64[4, U] (padding id -1), ``book`` i64[4, S],
    ``status`` i64[len(Status)] counts of order outcomes.
    """
    order, arrived = arrive(orders, seed)
    result = engine.process(arrived)
    fills, updates = result.fills, result.updates

    packed_fills = _pack(fills, FILL_FIELDS, fill=0)

    packed_updates = _pack(updates, UPDATE_FIELDS, fill=-1)

    top = engine.top_of_book()
    packed_book = np.stack([getattr(top, name) for name in BOOK_FIELDS]).astype(np.int64)
    status = np.bincount(result.outcomes.status, minlength=N_STATUS).astype(np.int64)
    return result, order, arrived, {
        "fills": packed_fills,
        "updates": packed_updates,
        "book": packed_book,
        "status": status,
    }
