"""The device matching engine's books: each symbol's resting orders as fixed-capacity
arrays (``systems.matching.device`` matches against them; ``WorldState.books`` holds them
when the whole tick runs on the device)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Book:
    """Books as ``[..., 2, capacity]`` per field: row 0 the bids, row 1 the asks, each
    row in priority order (best price first, earlier arrival first within a price), live
    orders first and empty slots (``qty == 0``) after them. One symbol's book is
    ``[2, capacity]``; a market's is ``[S, 2, capacity]``."""

    price: jax.Array  # i64 units; 0 in an empty slot
    qty: jax.Array  # i64 shares left; 0 = empty slot
    id: jax.Array  # i64 order id
    agent: jax.Array  # i32 owner

    @property
    def capacity(self) -> int:
        return int(self.qty.shape[-1])


def empty_book(capacity: int, n_symbols: int | None = None) -> Book:
    """A book with no orders and ``capacity`` slots per side: ``[2, capacity]``, or
    ``[n_symbols, 2, capacity]`` for a market."""
    if capacity < 1:
        raise ValueError(f"book capacity must be >= 1, got {capacity}")
    shape = (2, capacity) if n_symbols is None else (n_symbols, 2, capacity)
    # one buffer per field: a caller may donate the book to a jitted call
    return Book(price=jnp.zeros(shape, jnp.int64), qty=jnp.zeros(shape, jnp.int64), id=jnp.zeros(shape, jnp.int64),
                agent=jnp.zeros(shape, jnp.int32))
