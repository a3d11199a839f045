"""Strategy kinds. One module per kind; the registry finds them by their ``KIND`` name.

A strategy module defines:

* ``KIND: str``: the name used under ``population.<KIND>`` in the config;
* ``Config``: a dataclass of its config entry (``count`` plus parameter ranges);
* ``Params``: a ``flax.struct.dataclass`` table, one row per agent of the kind;
* ``ROWS_PER_AGENT: int``: order rows each agent writes per tick;
* ``make_params(cfg, count, rng, n_symbols) -> Params``: draw per-agent parameters;
* ``initial_holdings(cfg, params, n_symbols) -> (cash i64[count], position i64[count, S])``;
* ``decide(static, kind, world_params, params, state, frame, key) -> OrderBatch``:
  a pure, vectorised system returning exactly ``count * ROWS_PER_AGENT`` rows; ``frame``
  holds the read phase's observations (``frame.view``: MarketView);
* optionally ``indicators(cfg) -> IndicatorSpec``: the series its decide reads. The world
  merges every kind's spec, computes each series once per tick, and hands the values to
  decide as ``frame.indicators`` (an ``Indicators``; check ``ready`` before trading);
* optionally ``check(cfg, n_symbols) -> None``: raises ``ValueError("population.<KIND>.<key>:
  problem")`` for values no field bound can express (one field against another, a symbol
  row); config validation calls it, so a bad entry stops the run before anything is written;
* optionally ``rows_per_agent(cfg, n_symbols) -> int``: used instead of ``ROWS_PER_AGENT``
  when the rows depend on the market (one row per symbol for a cross-asset kind);
* optionally ``TIER: int`` (default 1): 1 decides every tick, 2 is reactive (its agents
  act when a wake condition fires; see ``systems.strategies._wake``), 3 is the background
  pool (no rows; see ``systems.background``);
* optionally ``init_state(cfg, params, n_symbols) -> pytree``: the kind's own mutable
  state, one row per agent (e.g. wake conditions). The world keeps it in
  ``state.kinds[KIND]``; ``decide`` then returns ``(OrderBatch, new_state)`` and the new
  state is stored in the write phase, so a change is in force from the next tick;
* optionally a ``latency: int`` field in ``Config``: orders decided at tick t reach the
  engine (and validation) at tick t + latency.

Adding a strategy is one module here plus one entry under ``population`` in the config.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def registry() -> dict[str, ModuleType]:
    """Strategy modules by kind name, discovered from this package."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        kind = getattr(mod, "KIND", None)
        if kind is not None:
            found[kind] = mod
    return found
