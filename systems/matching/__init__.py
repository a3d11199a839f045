"""Matching engines: one contract (:mod:`components.orders`), several implementations.

``ENGINES`` maps a config name to an engine class; build one with :func:`make_engine`.

* ``exact``: :class:`~systems.matching.exact.ExactEngine`, the readable reference whose
  docstring defines the semantics.
* ``fast``: :class:`~systems.matching.fast.FastEngine`, a numba kernel over arrays with
  identical results.
* ``device``: :class:`~systems.matching.device.DeviceEngine`, books as fixed-capacity
  JAX arrays matched by one jitted call per batch; identical results while no book side
  is full (then ``Reason.BOOK_FULL``).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from components.orders import STP, Depth, MatchResult, OrderBatch, TopOfBook
from systems.matching.device import DeviceEngine
from systems.matching.exact import ExactEngine
from systems.matching.fast import FastEngine


@runtime_checkable
class Engine(Protocol):
    """What every host matching engine offers (see :class:`ExactEngine` for semantics)."""

    n_symbols: int

    def process(self, batch: OrderBatch) -> MatchResult:
        """Match ``batch`` rows in array order; outcomes ``[B]``, fills ``[F]``, updates ``[U]``."""
        ...

    def top_of_book(self) -> TopOfBook:
        """Best bid/ask price and size per symbol, ``[S]``."""
        ...

    def depth(self, levels: int) -> Depth:
        """Top ``levels`` levels per side per symbol, ``[S, levels]``."""
        ...

    def resting_orders(self) -> dict[str, np.ndarray]:
        """Live orders by symbol, side, priority: ``id, agent, symbol, side, price, qty``."""
        ...

    def n_resting(self) -> int:
        """Number of live resting orders."""
        ...

    def stats(self) -> dict:
        """JSON-able counters."""
        ...

    def state_dict(self) -> dict:
        """The whole engine state as copies (NumPy arrays, numbers, strings, nested dicts):
        the books with every resting order's queue position, the id bookkeeping, the
        counters, and the tick sizes and STP mode it was built with. What a snapshot saves."""
        ...

    def load_state_dict(self, d: dict) -> None:
        """Restore ``state_dict()`` of an engine of the same class, tick sizes and STP mode,
        so that every later ``process`` returns exactly what the saved engine's would.
        Raises ``ValueError`` (engine unchanged) when ``d`` does not fit."""
        ...


ENGINES: dict[str, type] = {"device": DeviceEngine, "exact": ExactEngine, "fast": FastEngine}
"""Engine classes by config name."""


def make_engine(name: str, tick_size, stp: int = STP.NONE, **kwargs) -> Engine:
    """Build the engine called ``name`` for symbols with ``tick_size`` (i64[S], units).

    Extra keyword arguments go to the engine (e.g. the fast engine's initial
    capacities). Raises ``ValueError`` naming the allowed names for an unknown ``name``.
    """
    try:
        cls = ENGINES[name]
    except KeyError:
        raise ValueError(
            f"unknown matching engine {name!r}; allowed: {', '.join(sorted(ENGINES))}"
        ) from None
    return cls(tick_size, stp, **kwargs)


__all__ = ["ENGINES", "DeviceEngine", "Engine", "ExactEngine", "FastEngine", "make_engine"]
