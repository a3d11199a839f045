"""The tick's frame: what the stages of one tick hand each other.

A ``Frame`` lives for one tick. It starts empty (every field ``None``) and each stage
fills the fields it produces (``frame.replace(...)``); a later stage reads them by name.
The schedule (``qtg.core.schedule``) lists who writes and who reads each field. Leaves
are JAX arrays on the device side of the tick and NumPy arrays where the host stage
(the matching engine) produced them. ``None`` is a pytree node with no leaves, so an
unfilled field costs nothing at a jit boundary.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from flax import struct

from components.indicators import Indicators
from components.market import MarketView
from components.orders import OrderBatch


@struct.dataclass
class Frame:
    """One tick's intermediate values, by the stage that writes them. B = batch rows,
    S = symbols, K = strategy kinds."""

    # observe (read phase)
    view: MarketView | None = None  # [S] book summary and fair value the agents decide on, units
    indicators: Indicators | None = None  # [S, P] every indicator series of static.indicators
    # decide (read phase)
    orders: OrderBatch | None = None  # [B] the tick's orders; admit clears ``valid`` of refused rows
    kind_state: dict[str, Any] | None = None  # kind name -> its new state (None: field unchanged)
    delay_push: dict[str, OrderBatch] | None = None  # kind name (latency > 0) -> [its rows] decided now
    # admit (read phase)
    reject_reason: jax.Array | None = None  # i8[B] Reason of each refused row, 0 = passed
    rejects: jax.Array | None = None  # i64[len(Reason)] refused rows per reason (entry 0 is 0)
    borrow_fits: jax.Array | None = None  # bool[] every symbol's borrow demand fit in its pool
    # arrive (read phase)
    priority: jax.Array | None = None  # u32[B] each row's arrival priority (systems.match)
    # match (host): packed rows, see systems.match.FILL_FIELDS / UPDATE_FIELDS / BOOK_FIELDS
    fills: jax.Array | None = None  # i64[6, F] fills in the order they happened; padding qty 0
    updates: jax.Array | None = None  # i64[4, U] engine order updates; padding id -1
    book: jax.Array | None = None  # i64[4, S] top of book after the match: prices units, qty shares
    status: jax.Array | None = None  # i64[len(Status)] engine outcomes per status
    matched: Any = None  # the device match's outcomes (systems.matching.device.Matched), on device
    # write phase
    events: jax.Array | None = None  # f64[len(EVENT_FIELDS), 4 + E] the tick's news (fundamentals)
    marks: jax.Array | None = None  # f64[S] mark price after the tick, units (equity)
    equity_by_kind: jax.Array | None = None  # f64[K] total equity of each kind's agents, units (equity)
    # stages an experiment adds to the schedule
    extra: dict[str, Any] | None = None  # name -> value, for stages outside the default tick

    def merge(self, out: Frame) -> Frame:
        """This frame with every field that ``out`` fills (not ``None``) taken from ``out``."""
        new = {f.name: v for f in dataclasses.fields(out) if (v := getattr(out, f.name)) is not None}
        return self.replace(**new) if new else self

    def changes(self, given: Frame) -> Frame:
        """A frame with only the fields this one added or replaced since ``given`` (the same
        object counts as unchanged), the rest ``None``. A jitted segment returns this: an
        output that is an input would be copied."""
        return Frame(**{
            f.name: None if (v := getattr(self, f.name)) is getattr(given, f.name) else v
            for f in dataclasses.fields(self)
        })
