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
  holds the read phase's observations (``frame["view"]``: MarketView);
* optionally ``indicators(cfg) -> IndicatorSpec``: the series its decide reads. The world
  merges every kind's spec, computes each series once per tick, and hands the values to
  decide as ``frame["indicators"]`` (an ``Indicators``; check ``ready`` before trading);
* optionally ``check(cfg, n_symbols) -> None``: raises ``ValueError("population.<KIND>.<key>:
  problem")`` for values no field bound can express (one field against another, a symbol
  row); config validation calls it, so a bad entry stops the run before anything is written.

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
