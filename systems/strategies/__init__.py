"""Strategy kinds: the contract of an agent kind, and the registry that finds them.

A kind is a module with a ``KIND`` name. The registry (``registry()``) finds every module
of this package (names starting with ``_`` are helpers, not kinds) and every module added
with ``register`` (a kind defined elsewhere: an experiment's own strategy, a test's).
Adding a strategy is one module plus one entry under ``population.<KIND>`` in the config;
nothing else is edited. The world lays kinds out as rows (sorted by rows per agent, then
name, or its ``LAYOUT_NAME``), so agent ``i`` of a kind is row ``kind.start + i`` of every agent component.

Config entry (read when the config is converted, ``qtg.core.config``):

* ``KIND: str``: the name used under ``population.<KIND>``;
* ``Config``: a dataclass of the entry, ``count`` (agents; 0 = off) plus the kind's fields,
  each declared with ``components.schema.setting(default, lo=, hi=, doc=)``: its default,
  the values it allows (inclusive; default >= 0; ``None``: no bound) and one line of
  description. A ``[lo, hi]`` list is a range each agent draws from; both its ends must
  lie within the bounds, and lo <= hi;
* optionally ``check(cfg, n_symbols) -> None``: raises ``ValueError("population.<KIND>.<key>:
  problem")`` for values no field bound can express (one field against another, a symbol
  row); config validation calls it, so a bad entry stops the run before anything is written;
* optionally a ``latency: int`` field in ``Config``: orders decided at tick t reach the
  engine (and validation) at tick t + latency; a ``max_short: int`` field: shares an agent
  may be short (where the market allows it; kinds without it are long only).

Params and state (built once by ``qtg.core.world.build_world``, from a NumPy generator
seeded by the run's seed and shared by the kinds in layout order: draw in a fixed order):

* ``Params``: a ``flax.struct.dataclass`` table, one row per agent of the kind (arrays with
  the agent axis first); numbers a sweep may vmap;
* ``make_params(cfg, count, rng, n_symbols) -> Params``: draw per-agent parameters;
* ``initial_holdings(cfg, params, n_symbols) -> (cash i64[count] units, position
  i64[count, S] shares)``;
* optionally ``init_state(cfg, params, n_symbols) -> pytree``: the kind's own mutable
  state, one row per agent (e.g. wake conditions). The world keeps it in
  ``state.kinds[KIND]``; ``decide`` then returns ``(OrderBatch, new_state)`` and the new
  state is stored in the write phase, so a change is in force from the next tick.

Decisions (``systems.decide`` calls every kind each tick, in layout order):

* ``ROWS_PER_AGENT: int``: order rows each agent writes per tick, or
  ``rows_per_agent(cfg, n_symbols) -> int`` when they depend on the market (one row per
  symbol for a cross-asset kind);
* ``decide(static, kind, world, params, state, frame, key) -> OrderBatch``: a pure,
  vectorised system (no Python branch on traced values) returning exactly
  ``kind.count * ROWS_PER_AGENT`` rows, agent i's rows adjacent. ``static``:
  ``WorldStatic``; ``kind``: its ``KindStatic`` (``start``, ``count``); ``world``:
  ``WorldParams``; ``params``: its ``Params``; ``state``: the ``WorldState`` before the
  tick's writes; ``frame``: the read phase's observations (``frame.view``:
  ``MarketView`` [S]; ``frame.indicators``: ``Indicators``); ``key``: its own PRNG key.
  Agents decide on the state of the previous tick. Rows the kind does not use this tick
  are ``valid == False``; the pre-trade checks (``systems.admission``) still apply;
* optionally ``indicators(cfg) -> IndicatorSpec``: the series its decide reads. The world
  merges every kind's spec, computes each series once per tick, and hands the values to
  decide as ``frame.indicators`` (check ``ready`` before trading);
* optionally ``TIER: int`` (default 1): 1 decides every tick, 2 is reactive (its agents
  act when a wake condition fires; see ``systems.strategies._wake``), 3 is the background
  pool (no rows; see ``systems.background``);
* optionally ``OPENS_BOOK = True``: its orders count at tick 0, the opening (makers);
  every other kind's rows are invalid at tick 0;
* optionally ``EXTERNAL = True``: its decisions come from outside the tick (a learner's
  actions, set by an environment); the presets leave it out;
* optionally ``TRAINED = True``: it trades with a trained policy file (``rl_policy``); the
  presets leave it out;
* optionally ``LAYOUT_NAME: str``: the name it sorts by in the row layout instead of its
  own (``rl_policy`` sorts as ``learner``);
* optionally ``execution_report(params, cash0, cash1, position1, market_vwap) -> dict``:
  a summary section of the kind's execution (``qtg.reports.summary``).

Helpers. ``_rows``: order rows (cancel, IOC sizing, quotes); ``_signal``: indicator
signal kinds; ``_wake``: tier 2 wake conditions; ``_round_trip``: the holders that exit
through a threshold and buy back (``stop_loss``, ``take_profit``).

A new signal kind is one short module (``_signal.signal_kind`` builds ``Params``,
``make_params``, ``initial_holdings`` and ``decide``), e.g. an EMA crossover::

    # ema_cross.py: buy ``size`` shares while EMA(fast) > EMA(slow), sell while below.
    import dataclasses

    from components.indicators import IndicatorSpec
    from components.schema import setting
    from systems.strategies._signal import TradeConfig, by_size, period_range, signal_kind, vote

    KIND = "ema_cross"
    ROWS_PER_AGENT = 2  # cancel of the resting order, immediate-or-cancel order


    @dataclasses.dataclass
    class Config(TradeConfig):  # count, size, max_position, collar, cash, shares, latency
        fast: list[int] = setting([3, 5], lo=1, doc="Range of fast EMA periods in bars.")
        slow: list[int] = setting([10, 20], lo=2, doc="Range of slow EMA periods in bars.")


    def indicators(cfg):
        return IndicatorSpec(ema=period_range(cfg.fast) + period_range(cfg.slow))


    def signal(seen, p):  # each agent's EMAs at its own symbol and periods
        fast, slow = seen.ema(p.fast), seen.ema(p.slow)
        return vote(fast.value > slow.value, fast.value < slow.value, fast.ready & slow.ready)


    Params, make_params, initial_holdings, decide = signal_kind(Config, signal, by_size)

and, in the config, ``population.ema_cross: {count: 20, fast: [3, 5]}``.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

PLUGINS: dict[str, ModuleType] = {}
"""Kinds defined outside this package, by ``KIND``; ``register`` adds one."""


def rows_per_agent(module, cfg, n_symbols: int) -> int:
    """Order rows each agent of kind ``module`` writes per tick (0 for the background pool)."""
    if hasattr(module, "rows_per_agent"):
        return module.rows_per_agent(cfg, n_symbols)
    return getattr(module, "ROWS_PER_AGENT", 0)


def register(module: ModuleType) -> None:
    """Add the kind ``module`` (a module, or any object with the contract's attributes)
    defined outside this package. ValueError if another kind has its name."""
    taken = registry().get(module.KIND)
    if taken is not None and taken is not module:
        raise ValueError(f"strategy kind '{module.KIND}' is already registered ({taken.__name__})")
    PLUGINS[module.KIND] = module


def registry() -> dict[str, ModuleType]:
    """Strategy modules by kind name: this package's, then those added by ``register``."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        kind = getattr(mod, "KIND", None)
        if kind is not None:
            found[kind] = mod
    return {**found, **PLUGINS}
