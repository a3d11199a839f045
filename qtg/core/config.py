"""Structured configs: the schema Hydra composes into, and the one-time conversion to types.

``Config`` and its sections hold every default, and each strategy kind's ``Config`` (in
``systems/strategies``) holds that kind's; :func:`register` gives them to Hydra as the
schema, and ``conf/`` only composes and overrides them (presets, experiments, engine and
ui choices). ``to_config`` turns a composed DictConfig into typed dataclasses and validates
every value, raising ``ConfigError`` with one line naming the key and what is allowed. No
DictConfig goes past the entry point.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
)

from components.money import MAX_PRICE, MAX_RATE, RATE_SCALE, SCALE, to_fixed
from components.orders import STP
from components.schema import MAX_INT, allowed, bounds_of, setting


class ConfigError(ValueError):
    """A config value that cannot run. The message is one line: ``key: problem``."""


DEFAULT_SYMBOLS = ["ACME", "BOLT", "CRUX", "DYNE", "EVER", "FLUX", "GRID", "HALO", "IONA", "JADE"]
DEFAULT_SECTORS = ["tech", "tech", "energy", "energy", "health", "health", "finance", "finance",
                   "consumer", "consumer"]


@dataclasses.dataclass
class MarketConfig:
    symbols: list[str] = setting(list(DEFAULT_SYMBOLS), doc="Symbol names; one order book each.")
    sectors: list[str] = setting(list(DEFAULT_SECTORS), doc=(
        "Sector of each symbol (one per symbol); empty: every symbol in sector ``market``. The "
        "default list belongs to the default symbols: with another number of symbols and the default "
        "sectors left in place, every symbol goes in sector ``market``."))
    initial_price: float = setting(100.0, lo=0.0001, hi=MAX_PRICE / SCALE, doc=(
        "Opening reference price of every symbol, in currency; must be on the tick grid and at most "
        "100,000.00 (``components.money.MAX_PRICE``, the largest order price)."))
    tick_size: float = setting(0.01, lo=0.0001, hi=10_000.0, doc=(
        "Price increment of every symbol, in currency (at least 0.0001)."))
    initial_prices: list[float] = setting([], lo=0.0001, hi=MAX_PRICE / SCALE, doc=(
        "Per-symbol opening prices (one per symbol); empty: ``initial_price`` for all."))
    tick_sizes: list[float] = setting([], lo=0.0001, hi=10_000.0, doc=(
        "Per-symbol tick sizes (one per symbol); empty: ``tick_size`` for all."))
    shares_outstanding: int = setting(10_000_000, lo=1, hi=10**12, doc=(
        "Shares outstanding of every symbol."))
    shares_outstanding_each: list[int] = setting([], lo=1, hi=10**12, doc=(
        "Per-symbol shares outstanding (one per symbol); empty: ``shares_outstanding`` for all."))
    short_selling: bool = setting(True, doc=(
        "Allow sales beyond a position, backed by a borrow from the symbol's pool."))
    borrow_fraction: float = setting(0.05, hi=1.0, doc=(
        "Fraction of each symbol's shares outstanding in its borrow pool, in [0, 1]."))
    borrow_rate: float = setting(0.00001, hi=MAX_RATE / RATE_SCALE, doc=(
        "Borrow fee per tick, as a fraction of the borrowed shares' value at the last price."))
    anchoring: float = setting(0.01, lo=0.0, hi=1.0, doc=(
        "How fast prices find the fair value: the weight of the fair value, per tick, in the prices "
        "of the market's liquidity providers (makers' quote centres, noise traders' limit prices; "
        "each kind's ``anchor`` is relative to it). 1: prices pinned to fair value; the mispricing "
        "half-life is about ln 2 / anchoring ticks."))
    locate: bool = setting(True, doc=(
        "Resting short sales hold (and pay for) their borrow; without it only filled shorts borrow "
        "(the pool still reserves capacity for resting short sales)."))

    def ticks(self) -> np.ndarray:
        """Tick size per symbol in units. i64[S]"""
        return np.array([to_fixed(t) for t in self.tick_sizes or [self.tick_size] * len(self.symbols)], np.int64)

    def opening_prices(self) -> np.ndarray:
        """Opening price per symbol in units. i64[S]"""
        prices = self.initial_prices or [self.initial_price] * len(self.symbols)
        return np.array([to_fixed(p) for p in prices], np.int64)

    def outstanding(self) -> np.ndarray:
        """Shares outstanding per symbol. i64[S]"""
        return np.array(self.shares_outstanding_each or [self.shares_outstanding] * len(self.symbols), np.int64)

    def pools(self) -> np.ndarray:
        """Shares in each symbol's borrow pool: ``borrow_fraction`` of its outstanding, floored. i64[S]"""
        return np.floor(self.outstanding() * self.borrow_fraction).astype(np.int64)

    def sector_names(self) -> tuple[str, ...]:
        """Distinct sectors in order of first appearance."""
        return tuple(dict.fromkeys(self.sectors or ["market"]))

    def sector_of(self) -> np.ndarray:
        """Sector index of each symbol. i32[S]"""
        names = self.sector_names()
        return np.array([names.index(s) for s in self.sectors or ["market"] * len(self.symbols)], np.int32)


@dataclasses.dataclass
class FundamentalsConfig:
    """Per-symbol fundamentals and the macro state; fair value by the Gordon growth model
    ``D1 / (r + erp - g)`` with ``D1 = eps * payout * (1 + g)``."""

    rate: float = setting(0.04, hi=1.0, doc="Risk-free rate per year.")
    erp: float = setting(0.05, lo=-1.0, hi=1.0, doc="Equity risk premium per year.")
    growth: float = setting(0.04, lo=-0.99, hi=1.0, doc="Growth estimate per year of every symbol.")
    growth_each: list[float] = setting([], lo=-0.99, hi=1.0, doc=(
        "Per-symbol growth estimates; empty: ``growth`` for all."))
    payout: float = setting(0.5, hi=1.0, doc="Payout ratio of every symbol, in [0, 1].")
    payout_each: list[float] = setting([], hi=1.0, doc="Per-symbol payout ratios; empty: ``payout`` for all.")
    eps_each: list[float] = setting([], lo=-1_000_000.0, hi=1_000_000.0, doc=(
        "Per-symbol earnings per share, in currency; empty: calibrated so that each symbol's opening "
        'fair value equals its initial price.'))
    min_spread: float = setting(0.01, lo=1e-06, hi=1.0, doc=(
        "Guard: the discount rate minus growth is at least this (the fallback when r <= g)."))
    pe_bounds: list[float] = setting([2.0, 60.0], lo=0.001, hi=1000.0, doc=(
        "Fair value is kept within [lo, hi] times earnings per share (and at least one tick)."))
    drift: float = setting(0.0, lo=-0.01, hi=0.01, doc=(
        "Mean log change of each symbol's EPS per tick (the fundamentals' random walk; 0: no drift)."))
    volatility: float = setting(0.0003, hi=0.1, doc=(
        "Standard deviation of the log change of each symbol's EPS per tick (0: no random walk)."))
    jump_rate: float = setting(0.001, hi=1.0, doc=(
        "Probability per tick and symbol of a jump in EPS (on top of the walk and the news)."))
    jump_std: float = setting(0.003, hi=1.0, doc="Standard deviation of a jump's log size.")


@dataclasses.dataclass
class NewsKindConfig:
    """One kind of news event: stochastic arrivals and its size distribution."""

    rate: float = setting(0.0, hi=1.0, doc=(
        "Probability per tick that an event of this kind arrives (0 = only scheduled ones)."))
    min_interval: int = setting(100, doc="Ticks at least between two random events of this kind.")
    mean: float = setting(0.0, lo=-1.0, hi=1.0, doc="Mean of the event size (normal distribution).")
    std: float = setting(0.0, hi=1.0, doc="Standard deviation of the event size.")
    sentiment: float = setting(0.0, lo=-100.0, hi=100.0, doc=(
        "Sentiment impulse per unit of size, on the targets' fair value (fraction)."))
    duration: int = setting(100, lo=1, hi=10_000_000, doc=(
        "Ticks over which the sentiment decays (exponential time constant)."))


@dataclasses.dataclass
class ScheduledEvent:
    kind: str = setting("sector", doc="earnings, guidance, rate or sector.")
    tick: int = setting(0, doc="Tick at which the event happens (its effect is seen from the next tick).")
    target: str = setting("", doc="Symbol name (earnings, guidance), sector name (sector); ignored for rate.")
    size: float = setting(0.0, lo=-10.0, hi=10.0, doc=(
        "Earnings: EPS surprise (fraction); guidance: growth change; rate: rate change; sector: "
        "sentiment (fraction of fair value)."))


@dataclasses.dataclass
class NewsConfig:
    earnings: NewsKindConfig = dataclasses.field(
        default_factory=lambda: NewsKindConfig(rate=0.001, min_interval=100, std=0.02, sentiment=0.5, duration=200))
    """Earnings surprise: moves one symbol's EPS by ``size`` (fraction)."""
    guidance: NewsKindConfig = dataclasses.field(
        default_factory=lambda: NewsKindConfig(rate=0.001, min_interval=200, std=0.001, sentiment=2.0, duration=200))
    """Guidance change: moves one symbol's growth estimate by ``size``."""
    rate: NewsKindConfig = dataclasses.field(
        default_factory=lambda: NewsKindConfig(rate=0.0002, min_interval=500, std=0.001, duration=100))
    """Rate decision: moves the risk-free rate by ``size`` (all symbols)."""
    sector: NewsKindConfig = dataclasses.field(
        default_factory=lambda: NewsKindConfig(rate=0.001, min_interval=200, std=0.01, sentiment=1.0, duration=200))
    """Sector news: sentiment ``size`` (fraction of fair value) on one sector's symbols."""
    scheduled: list[ScheduledEvent] = dataclasses.field(default_factory=list)
    """Events at exact ticks, e.g. ``{kind: sector, tick: 500, target: tech, size: -0.2}``."""


@dataclasses.dataclass
class EngineConfig:
    name: str = setting("fast", doc=(
        "Matching engine: fast (compiled kernel), exact (readable reference) or device (the whole tick "
        "on the device: JAX books of fixed capacity, one jitted call per tick)."))
    stp: str = setting("cancel_maker", doc="Self-trade prevention: none, cancel_taker or cancel_maker.")
    capacity: int = setting(256, lo=1, hi=1_000_000, doc=(
        "Device engine only: orders per book side. An order that would rest on a full side is refused "
        "(BOOK_FULL, counted in the run's rejections); the host engines grow instead."))


@dataclasses.dataclass
class RunConfig:
    ticks: int = setting(1000, lo=1, hi=10**9, doc=(
        "Ticks to simulate; tick 0 is the opening, where only market makers quote. A resumed run "
        "continues until the world has run this many ticks in all."))
    chart: bool = setting(True, doc="Write chart.png into the run directory.")
    table: bool = setting(True, doc="Print the summary table at the end.")
    agents_table: bool = setting(True, doc=(
        "Write agents.csv: one row per agent (P&L, risk, trades, positions)."))
    memory_limit_gb: float = setting(0.0, doc=(
        "Refuse a population whose estimated memory exceeds this many GiB; 0: the memory this "
        "machine has available when the run starts."))


@dataclasses.dataclass
class RiskConfig:
    var_window: int = setting(50, lo=2, hi=100_000, doc=(
        "Returns (ticks) in the historical Value-at-Risk window; memory is 4 bytes each per agent."))
    var_confidence: float = setting(0.95, hi=1.0, doc="VaR confidence level, in (0, 1).")
    periods_per_year: float = setting(1.0, hi=1_000_000.0, doc=(
        "Sharpe ratios are scaled by sqrt(this); 1 reports per-tick Sharpe."))


@dataclasses.dataclass
class StorageConfig:
    """The ``storage`` hook: a SQLite database (WAL) in the run directory."""

    file: str = setting("qtg.sqlite", doc="Database file name, inside the run directory.")
    orders: bool = setting(False, doc="Also store every order the engine saw, with its outcome (large).")
    candles: list[int] = setting([60, 300, 3600], lo=1, doc=(
        "Candle intervals in ticks (three, like 1m / 5m / 1h bars)."))
    portfolio_every: int = setting(100, doc=(
        "Ticks between portfolio snapshots (every agent's cash, equity and positions); 0 = off."))
    batch_ticks: int = setting(50, lo=1, hi=100_000, doc=(
        "Ticks per write transaction: a kill loses at most the batch not yet committed."))
    queue_batches: int = setting(8, lo=1, hi=1000, doc=(
        "Batches waiting for the writer before the simulation waits for it."))


@dataclasses.dataclass
class SnapshotConfig:
    """Save points of the whole world (see qtg.core.snapshot)."""

    every: int = setting(0, doc=(
        "Write a snapshot every this many ticks; 0 = only on demand (SIGUSR1, the TUI's ``w``)."))
    at_end: bool = setting(False, doc=(
        "Also write one when the run stops (its last tick, Ctrl-C or a stop request)."))
    dir: str = setting("snapshots", doc="Folder for snapshots, inside the run directory.")
    keep: int = setting(0, doc="Keep only the newest this many periodic snapshots; 0 = keep all.")


@dataclasses.dataclass
class MetricsConfig:
    """The ``metrics`` hook: run-time metrics in metrics.jsonl and metrics.json."""

    every: int = setting(100, lo=1, doc="Ticks per line of metrics.jsonl (throughput, spreads, marks).")


@dataclasses.dataclass
class UIConfig:
    """How the run is shown: ``none`` (progress bar and summary) or ``tui`` (Textual)."""

    name: str = setting("none", doc="none or tui.")
    fps: float = setting(10.0, lo=0.1, hi=60.0, doc=(
        "Screen redraws per second (the simulation never waits for the screen)."))
    history: int = setting(400, lo=10, hi=100_000, doc="Ticks of price history in the chart.")
    depth: int = setting(10, lo=1, hi=50, doc="Price levels per side in the order book panel.")
    speed: float = setting(0.0, doc="Starting speed limit in ticks per second; 0 = as fast as it runs.")
    paused: bool = setting(False, doc="Start paused.")


UI_NAMES = ("none", "tui")
HOOK_NAMES = ("progress", "metrics", "storage", "tui")
"""The hooks a config may name; :data:`qtg.hooks.HOOKS` has a factory for each."""

def _default_population() -> dict[str, Any]:
    """Every registered kind with its own Config defaults, and the default market's counts:
    50 market makers (five per symbol) and 100 noise traders; every other kind is off."""
    from systems.strategies import registry

    counts = {"market_maker": 50, "noise": 100}
    return {name: dataclasses.asdict(kind.Config()) | {"count": counts.get(name, 0)}
            for name, kind in sorted(registry().items())}


@dataclasses.dataclass
class Config:
    market: MarketConfig = dataclasses.field(default_factory=MarketConfig)
    fundamentals: FundamentalsConfig = dataclasses.field(default_factory=FundamentalsConfig)
    news: NewsConfig = dataclasses.field(default_factory=NewsConfig)
    population: dict[str, Any] = dataclasses.field(default_factory=_default_population)
    """Strategy kind -> its config entry (see each module in systems/strategies); by default
    every kind with its Config's defaults, 50 market makers and 100 noise traders."""
    engine: EngineConfig = dataclasses.field(default_factory=EngineConfig)
    risk: RiskConfig = dataclasses.field(default_factory=RiskConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    hooks: list[str] = dataclasses.field(default_factory=lambda: ["progress", "metrics", "storage"])
    """Observers of the run, by name (see HOOK_NAMES): progress, metrics, storage, tui."""
    storage: StorageConfig = dataclasses.field(default_factory=StorageConfig)
    snapshot: SnapshotConfig = dataclasses.field(default_factory=SnapshotConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=MetricsConfig)
    ui: UIConfig = dataclasses.field(default_factory=UIConfig)
    resume: str = ""
    """Path of a snapshot to continue from. The world (market, population, engine, news,
    fundamentals, risk, seed) comes from the snapshot; run, hooks, storage, snapshot,
    metrics and ui come from this config."""
    seed: int = setting(0, hi=2**63 - 1, doc="Seed of every random draw of the run (parameters, news, each kind's key).")


def register() -> None:
    """Register the schema with Hydra's ConfigStore as ``schema``."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="schema", node=Config)


@functools.cache
def schema_node(cls: type) -> DictConfig:
    """The structured config of dataclass ``cls`` with its defaults, built once (building
    it is most of a conversion's time); ``OmegaConf.merge`` copies it, never changes it."""
    return OmegaConf.structured(cls)


def to_config(cfg: DictConfig | Config | dict, cls: type[Config] = Config) -> Config:
    """Convert once to typed dataclasses and validate. Raises ConfigError. ``cls``: the
    schema, ``Config`` or a subclass with more sections (``qtg.rl.config.RLConfig``)."""
    if isinstance(cfg, Config):
        cfg = OmegaConf.structured(cfg)
    check_keys(OmegaConf.to_container(cfg if isinstance(cfg, DictConfig) else OmegaConf.create(cfg)), cls)
    try:
        merged = OmegaConf.merge(schema_node(cls), cfg)
        typed: Config = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(omegaconf_line(e)) from None
    typed.population = {
        name: _kind_config(name, entry) for name, entry in dict(typed.population).items()
    }
    m = typed.market
    if m.sectors == DEFAULT_SECTORS and len(m.symbols) != len(DEFAULT_SECTORS):
        m.sectors = []  # the default sectors describe the default symbols only
    validate(typed)
    return typed


def omegaconf_line(e: OmegaConfBaseException, prefix: str = "") -> str:
    """An OmegaConf error as one line naming the full key; unknown keys list the allowed
    ones. ``prefix`` is prepended to the key (for a node merged on its own)."""
    key = prefix + (getattr(e, "full_key", None) or "")
    where = _schema_path(getattr(e, "object_type", None))
    if where and "." not in key and not prefix:  # a list item's error names no path
        key = f"{where}.{key}"
    if isinstance(e, (ConfigAttributeError, ConfigKeyError)):
        parent, _, name = key.rpartition(".")
        return unknown_key_line(key, name, allowed_keys(parent), "unknown key")
    problem = str(e).splitlines()[0].strip()
    if "is not a ListConfig" in problem:
        problem = "must be a list, such as [a, b]"
    return f"{key or 'config'}: {problem}"


def check_keys(data: Any, cls: type, path: str = "") -> None:
    """Every key of the composed ``data`` names a field of the schema ``cls``, at any
    depth (lists of events and strategy kinds' entries included), and a list field holds
    a list: ConfigError ``key: unknown key; did you mean ...`` otherwise. Run before the
    merge with the schema, which would report a nested key without its path, or drop it."""
    from systems.strategies import registry

    if not isinstance(data, dict) or not dataclasses.is_dataclass(cls):
        return
    hints, names = typing.get_type_hints(cls), [f.name for f in dataclasses.fields(cls)]
    for key, value in data.items():
        full = f"{path}{key}"
        if key not in names:
            raise ConfigError(unknown_key_line(full, str(key), names, "unknown key"))
        hint = hints[key]
        if issubclass(cls, Config) and key == "population" and isinstance(value, dict):
            kinds = registry()
            for name, entry in value.items():
                if name not in kinds:
                    raise ConfigError(unknown_key_line(f"population.{name}", name, sorted(kinds),
                                                       "unknown strategy kind"))
                check_keys(entry, kinds[name].Config, f"population.{name}.")
        elif dataclasses.is_dataclass(hint):
            check_keys(value, hint, f"{full}.")
        elif typing.get_origin(hint) is list and value is not None and not isinstance(value, str):
            if not isinstance(value, list):
                shape = "a range [lo, hi]" if path.startswith("population.") else "a list"
                raise ConfigError(f"{full}: must be {shape}, got {value}")
            (item,) = typing.get_args(hint)
            for i, v in enumerate(value):
                check_keys(v, item, f"{full}[{i}].")


def unknown_key_line(key: str, name: str, allowed: list[str], problem: str) -> str:
    """``key: problem; did you mean 'x'? allowed: ...`` (the guess when one is close)."""
    import difflib

    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    guess = f"; did you mean '{close[0]}'?" if close else ""
    return f"{key}: {problem}{guess}" + (f"{'' if guess else ';'} allowed: {', '.join(allowed)}" if allowed else "")


def _schema_path(cls: Any, node: Any = None, path: str = "") -> str:
    """Where dataclass ``cls`` is an item of a list field below the schema ``node`` (default
    ``Config``), as ``news.scheduled[*]``; "" when it is not."""
    node = Config if node is None else node
    if cls is None or not dataclasses.is_dataclass(node):
        return ""
    for name, hint in typing.get_type_hints(node).items():
        if typing.get_origin(hint) is list and typing.get_args(hint) == (cls,):
            return f"{path}{name}[*]"
        found = _schema_path(cls, hint, f"{path}{name}.") if dataclasses.is_dataclass(hint) else ""
        if found:
            return found
    return ""


def allowed_keys(path: str) -> list[str]:
    """Field names of the config node at dotted ``path`` ("" = the root)."""
    from systems.strategies import registry

    node: object = Config
    parts = [p.split("[")[0] for p in path.split(".") if p]
    if parts[:1] == ["population"]:
        kinds = registry()
        if len(parts) == 1:
            return sorted(kinds)
        node, parts = (kinds[parts[1]].Config if parts[1] in kinds else None), parts[2:]
    for part in parts:
        node = typing.get_type_hints(node).get(part) if dataclasses.is_dataclass(node) else None
        if typing.get_origin(node) is list:  # a list of items: the item's fields
            node = typing.get_args(node)[0]
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


def _kind_config(name: str, entry: Any):
    from systems.strategies import registry

    kinds = registry()
    if name not in kinds:
        raise ConfigError(unknown_key_line(f"population.{name}", name, sorted(kinds), "unknown strategy kind"))
    if dataclasses.is_dataclass(entry):
        entry = OmegaConf.structured(entry)
    try:
        return OmegaConf.to_object(OmegaConf.merge(schema_node(kinds[name].Config), entry))
    except OmegaConfBaseException as e:
        raise ConfigError(omegaconf_line(e, prefix=f"population.{name}.")) from None


def numbers(node: Any, path: str = "") -> typing.Iterator[tuple[str, str, Any, list, tuple, bool]]:
    """Every number of a config tree: ``(key, field, value, numbers, bounds, real)`` per
    numeric field of each dataclass below ``node`` (lists of dataclasses included; a
    strategy kind's entry under ``population.<kind>``). ``numbers`` is the value's numbers
    (one, or a list's); ``real``: the field holds floats. Booleans are not numbers."""
    if isinstance(node, dict):
        for name, child in node.items():
            yield from numbers(child, f"{path}{name}.")
        return
    if not dataclasses.is_dataclass(node):
        return
    bounds = bounds_of(type(node))
    for f in dataclasses.fields(node):
        value, key = getattr(node, f.name), f"{path}{f.name}"
        items = value if isinstance(value, list) else [value]
        if dataclasses.is_dataclass(value) or isinstance(value, dict):
            yield from numbers(value, f"{key}.")
        elif items and all(dataclasses.is_dataclass(v) for v in items):
            for i, v in enumerate(items):
                yield from numbers(v, f"{key}[{i}].")
        else:
            nums = [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if nums:
                real = any(isinstance(v, float) for v in nums)
                yield key, f.name, value, nums, bounds[f.name], real


def check_finite(cfg: Config) -> None:
    """Every number is finite (a NaN or an infinity would pass every comparison, or cast to
    garbage): checked first, before any value is converted."""
    for key, _, value, nums, _, _ in numbers(cfg):
        if not all(math.isfinite(v) for v in nums):
            raise ConfigError(f"{key}: must be a finite number, got {value}")


def check_bounds(cfg: Config) -> None:
    """Every number lies within its field's bounds (``components.schema.setting``); a
    strategy kind's ``[lo, hi]`` range has two numbers, lo <= hi, both within."""
    for key, name, value, nums, (lo, hi), real in numbers(cfg):
        if hi is None and not real:
            hi = MAX_INT
        if key.startswith("population.") and isinstance(value, list):
            if len(value) != 2:
                raise ConfigError(f"{key}: must be a range [lo, hi], got {value}")
            if value[0] > value[1]:
                raise ConfigError(f"{key}: range [lo, hi] needs lo <= hi, got {value}")
        if any((lo is not None and v < lo) or (hi is not None and v > hi) for v in nums):
            raise ConfigError(f"{key}: must be {allowed(lo, hi, real)}, got {value}")


def validate(cfg: Config) -> None:
    """Check every value; raise ConfigError naming the first bad key."""
    check_finite(cfg)
    check_bounds(cfg)
    m = cfg.market
    if not m.symbols:
        raise ConfigError("market.symbols: at least one symbol is needed")
    if len(set(m.symbols)) != len(m.symbols):
        raise ConfigError(f"market.symbols: names must be unique, got {m.symbols}")
    n = len(m.symbols)
    for key, values in (("tick_sizes", m.tick_sizes), ("initial_prices", m.initial_prices),
                        ("sectors", m.sectors), ("shares_outstanding_each", m.shares_outstanding_each)):
        if values and len(values) != n:
            hint = "; set it too when changing market.symbols ([] = one sector)" if key == "sectors" else ""
            raise ConfigError(f"market.{key}: needs one value per symbol ({n}), got {len(values)}{hint}")
    tick_key = "market.tick_sizes" if m.tick_sizes else "market.tick_size"
    for t in m.tick_sizes or [m.tick_size]:
        if not t > 0 or to_fixed(t) < 1 or abs(to_fixed(t) - t * SCALE) > 1e-6:
            raise ConfigError(f"{tick_key}: must be a positive multiple of {1 / SCALE}, got {t}")
    price_key = "market.initial_prices" if m.initial_prices else "market.initial_price"
    for p, units, tick in zip(m.initial_prices or [m.initial_price] * n, m.opening_prices(), m.ticks()):
        if not p > 0 or units % tick != 0:
            raise ConfigError(
                f"{price_key}: must be a positive multiple of the tick size {tick / SCALE}, got {p}"
            )


    from qtg.core.news import check_news_config

    try:
        check_news_config(cfg)
    except ValueError as e:  # "key: problem"
        raise ConfigError(str(e)) from None

    from systems.matching import ENGINES

    if cfg.engine.name not in ENGINES:
        raise ConfigError(
            f"engine.name: unknown engine '{cfg.engine.name}'; allowed: {', '.join(sorted(ENGINES))}"
        )
    stps = [s.name.lower() for s in STP]
    if cfg.engine.stp not in stps:
        raise ConfigError(f"engine.stp: unknown mode '{cfg.engine.stp}'; allowed: {', '.join(stps)}")

    from components.risk import RiskSpec

    try:
        RiskSpec(**dataclasses.asdict(cfg.risk))
    except ValueError as e:  # "risk.<field> must be ..."
        key, _, problem = str(e).partition(" ")
        raise ConfigError(f"{key}: {problem}") from None

    if not cfg.resume:  # a resumed run's news comes from its snapshot
        from qtg.core.news import check_schedule_in_run

        try:
            check_schedule_in_run(cfg)
        except ValueError as e:  # "news.scheduled[i].tick: problem"
            raise ConfigError(str(e)) from None
    _check_hooks(cfg)

    from systems.strategies import registry

    total = 0
    for name, kcfg in cfg.population.items():
        check = getattr(registry()[name], "check", None)
        if check is not None and kcfg.count > 0:  # a kind that is off needs no coherent entry
            try:
                check(kcfg, n)
            except ValueError as e:  # "population.<kind>.<key>: problem"
                raise ConfigError(str(e)) from None
        total += kcfg.count
    if total < 1:
        raise ConfigError("population: at least one agent is needed (all counts are 0)")
    check_economy(cfg)
    check_memory(cfg)


def check_economy(cfg: Config) -> None:
    """The fixed-point totals fit int64 with headroom, from the config alone: every agent's
    opening cash plus the value of every share outstanding and every share of the borrow
    pools at ``MAX_PRICE`` (no order, so no trade, is priced above it) is at most
    ``ECONOMY_MAX`` units. Cash and shares are conserved, so no later sum of cash, of
    positions, or of a position's value at any price can overflow. Computed with Python
    integers. The message blames the larger of the two parts."""
    from components.money import ECONOMY_MAX

    m = cfg.market
    shares = sum(map(int, m.outstanding())) + sum(map(int, m.pools()))
    market = shares * MAX_PRICE
    cash = {name: k.count * round(k.cash * SCALE) for name, k in cfg.population.items() if hasattr(k, "cash")}
    if market + sum(cash.values()) <= ECONOMY_MAX:
        return
    limit = f"{ECONOMY_MAX / SCALE:.3g} in currency"
    if market >= sum(cash.values()):
        out = "market.shares_outstanding_each" if m.shares_outstanding_each else "market.shares_outstanding"
        raise ConfigError(
            f"{out}: the market's {shares:,} shares (the borrow pools included) at the largest order price "
            f"({MAX_PRICE / SCALE:,.2f}) are worth {market / SCALE:.3g}, more than {limit} that keeps money "
            f"in int64; lower it, got {m.shares_outstanding_each or m.shares_outstanding}")
    name = max(cash, key=cash.get)
    raise ConfigError(
        f"population.{name}.cash: the agents' opening cash ({sum(cash.values()) / SCALE:.3g} in all) "
        f"must be at most {limit} with the market's value to keep money in int64; lower the cash "
        f"or the counts, got {cfg.population[name].cash} for {cfg.population[name].count:,} agents")


BYTES_BASE = 800 * 2**20
"""Memory of a run before its agents: the interpreter, JAX, the compiled tick."""


def memory_estimate(cfg: Config) -> int:
    """Bytes a run of ``cfg`` needs, estimated from the counts: per agent with rows, its
    state (wallet cash and fees, a position and a borrow per symbol, order slots, the
    VaR window), times 4 for the tick's working copies, plus 240 bytes per order row
    (measured: 200,000 noise traders on 10 symbols take 2.8 KiB each at peak)."""
    from components.agents import SLOTS
    from systems.strategies import registry, rows_per_agent

    n = len(cfg.market.symbols)
    kinds = registry()
    per_agent = 16 + 16 * n + 28 * SLOTS + 4 * cfg.risk.var_window + 64
    total = BYTES_BASE
    for name, k in cfg.population.items():
        rows = rows_per_agent(kinds[name], k, n)
        if rows:  # the background pool is aggregate: no rows, no per-member state
            total += k.count * (4 * per_agent + 240 * rows)
    return total


def available_memory() -> int:
    """Bytes of memory this machine has available now (Linux: MemAvailable)."""
    import os

    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def check_memory(cfg: Config) -> None:
    """Refuse a population whose estimated memory exceeds ``run.memory_limit_gb`` (0: the
    machine's available memory), with the estimate in the message."""
    need = memory_estimate(cfg)
    limit = cfg.run.memory_limit_gb * 2**30 or available_memory()
    if need > limit:
        agents = sum(k.count for k in cfg.population.values())
        what = "allowed by run.memory_limit_gb" if cfg.run.memory_limit_gb else "available"
        raise ConfigError(
            f"population: {agents:,} agents need about {need / 2**30:.1f} GiB (estimated), more than the "
            f"{limit / 2**30:.1f} GiB {what}; lower the counts, or set run.memory_limit_gb to allow more")


def _check_hooks(cfg: Config) -> None:
    """Hooks, storage, snapshot, metrics and ui settings."""
    for name in cfg.hooks:
        if name not in HOOK_NAMES:
            raise ConfigError(f"hooks: unknown hook '{name}'; allowed: {', '.join(sorted(HOOK_NAMES))}")
    if len(set(cfg.hooks)) != len(cfg.hooks):
        raise ConfigError(f"hooks: each hook at most once, got {cfg.hooks}")
    st = cfg.storage
    if not st.file or "/" in st.file or "\\" in st.file:
        raise ConfigError(f"storage.file: a file name inside the run directory, got '{st.file}'")
    if len(st.candles) != 3 or any(c < 1 for c in st.candles) or sorted(st.candles) != st.candles:
        raise ConfigError(f"storage.candles: three increasing intervals in ticks (>= 1), got {st.candles}")
    sn = cfg.snapshot
    if not sn.dir:
        raise ConfigError("snapshot.dir: must name a folder")
    ui = cfg.ui
    if ui.name not in UI_NAMES:
        raise ConfigError(f"ui.name: unknown ui '{ui.name}'; allowed: {', '.join(UI_NAMES)}")
    if cfg.resume:
        from pathlib import Path

        if not Path(cfg.resume).is_file():
            raise ConfigError(f"resume: no snapshot file at '{cfg.resume}'")


def config_dict(cfg: Config) -> dict:
    """The typed config as plain data (for summary files)."""
    return dataclasses.asdict(cfg) | {
        "population": {k: dataclasses.asdict(v) for k, v in cfg.population.items()}
    }
