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
import typing
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    ConfigAttributeError,
    ConfigKeyError,
    OmegaConfBaseException,
)

from components.money import MAX_PRICE, SCALE, to_fixed
from components.orders import STP


class ConfigError(ValueError):
    """A config value that cannot run. The message is one line: ``key: problem``."""


DEFAULT_SYMBOLS = ["ACME", "BOLT", "CRUX", "DYNE", "EVER", "FLUX", "GRID", "HALO", "IONA", "JADE"]
DEFAULT_SECTORS = ["tech", "tech", "energy", "energy", "health", "health", "finance", "finance",
                   "consumer", "consumer"]


@dataclasses.dataclass
class MarketConfig:
    symbols: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_SYMBOLS))
    """Symbol names; one order book each."""
    sectors: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_SECTORS))
    """Sector of each symbol (one per symbol); empty: every symbol in sector ``market``.
    The default list belongs to the default symbols: with another number of symbols and
    the default sectors left in place, every symbol goes in sector ``market``."""
    initial_price: float = 100.0
    """Opening reference price of every symbol, in currency; must be on the tick grid and at
    most 100,000.00 (``components.money.MAX_PRICE``, the largest order price)."""
    tick_size: float = 0.01
    """Price increment of every symbol, in currency (at least 0.0001)."""
    initial_prices: list[float] = dataclasses.field(default_factory=list)
    """Per-symbol opening prices (one per symbol); empty: ``initial_price`` for all."""
    tick_sizes: list[float] = dataclasses.field(default_factory=list)
    """Per-symbol tick sizes (one per symbol); empty: ``tick_size`` for all."""
    shares_outstanding: int = 10_000_000
    """Shares outstanding of every symbol."""
    shares_outstanding_each: list[int] = dataclasses.field(default_factory=list)
    """Per-symbol shares outstanding (one per symbol); empty: ``shares_outstanding`` for all."""
    short_selling: bool = True
    """Allow sales beyond a position, backed by a borrow from the symbol's pool."""
    borrow_fraction: float = 0.05
    """Fraction of each symbol's shares outstanding in its borrow pool, in [0, 1]."""
    borrow_rate: float = 0.00001
    """Borrow fee per tick, as a fraction of the borrowed shares' value at the last price."""
    locate: bool = True
    """Resting short sales hold (and pay for) their borrow; without it only filled
    shorts borrow (the pool still reserves capacity for resting short sales)."""

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

    rate: float = 0.04
    """Risk-free rate per year."""
    erp: float = 0.05
    """Equity risk premium per year."""
    growth: float = 0.04
    """Growth estimate per year of every symbol."""
    growth_each: list[float] = dataclasses.field(default_factory=list)
    """Per-symbol growth estimates; empty: ``growth`` for all."""
    payout: float = 0.5
    """Payout ratio of every symbol, in [0, 1]."""
    payout_each: list[float] = dataclasses.field(default_factory=list)
    """Per-symbol payout ratios; empty: ``payout`` for all."""
    eps_each: list[float] = dataclasses.field(default_factory=list)
    """Per-symbol earnings per share, in currency; empty: calibrated so that each symbol's
    opening fair value equals its initial price."""
    min_spread: float = 0.01
    """Guard: the discount rate minus growth is at least this (the fallback when r <= g)."""
    pe_bounds: list[float] = dataclasses.field(default_factory=lambda: [2.0, 60.0])
    """Fair value is kept within [lo, hi] times earnings per share (and at least one tick)."""


@dataclasses.dataclass
class NewsKindConfig:
    """One kind of news event: stochastic arrivals and its size distribution."""

    rate: float = 0.0
    """Probability per tick that an event of this kind arrives (0 = only scheduled ones)."""
    min_interval: int = 100
    """Ticks at least between two random events of this kind."""
    mean: float = 0.0
    """Mean of the event size (normal distribution)."""
    std: float = 0.0
    """Standard deviation of the event size."""
    sentiment: float = 0.0
    """Sentiment impulse per unit of size, on the targets' fair value (fraction)."""
    duration: int = 100
    """Ticks over which the sentiment decays (exponential time constant)."""


@dataclasses.dataclass
class ScheduledEvent:
    kind: str = "sector"
    """earnings, guidance, rate or sector."""
    tick: int = 0
    """Tick at which the event happens (its effect is seen from the next tick)."""
    target: str = ""
    """Symbol name (earnings, guidance), sector name (sector); ignored for rate."""
    size: float = 0.0
    """Earnings: EPS surprise (fraction); guidance: growth change; rate: rate change;
    sector: sentiment (fraction of fair value)."""


@dataclasses.dataclass
class NewsConfig:
    earnings: NewsKindConfig = dataclasses.field(
        default_factory=lambda: NewsKindConfig(rate=0.002, min_interval=100, std=0.05, sentiment=0.5, duration=200))
    """Earnings surprise: moves one symbol's EPS by ``size`` (fraction)."""
    guidance: NewsKindConfig = dataclasses.field(
        default_factory=lambda: NewsKindConfig(rate=0.001, min_interval=200, std=0.005, sentiment=2.0, duration=200))
    """Guidance change: moves one symbol's growth estimate by ``size``."""
    rate: NewsKindConfig = dataclasses.field(
        default_factory=lambda: NewsKindConfig(rate=0.0002, min_interval=500, std=0.0025, duration=100))
    """Rate decision: moves the risk-free rate by ``size`` (all symbols)."""
    sector: NewsKindConfig = dataclasses.field(
        default_factory=lambda: NewsKindConfig(rate=0.001, min_interval=200, std=0.05, sentiment=1.0, duration=200))
    """Sector news: sentiment ``size`` (fraction of fair value) on one sector's symbols."""
    scheduled: list[ScheduledEvent] = dataclasses.field(default_factory=list)
    """Events at exact ticks, e.g. ``{kind: sector, tick: 500, target: tech, size: -0.2}``."""


@dataclasses.dataclass
class EngineConfig:
    name: str = "fast"
    """Matching engine: fast (compiled kernel) or exact (readable reference)."""
    stp: str = "cancel_maker"
    """Self-trade prevention: none, cancel_taker or cancel_maker."""


@dataclasses.dataclass
class RunConfig:
    ticks: int = 1000
    """Ticks to simulate; tick 0 is the opening, where only market makers quote. A resumed
    run continues until the world has run this many ticks in all."""
    chart: bool = True
    """Write chart.png into the run directory."""
    table: bool = True
    """Print the summary table at the end."""
    agents_table: bool = True
    """Write agents.csv: one row per agent (P&L, risk, trades, positions)."""


@dataclasses.dataclass
class RiskConfig:
    var_window: int = 50
    """Returns (ticks) in the historical Value-at-Risk window; memory is 4 bytes each per agent."""
    var_confidence: float = 0.95
    """VaR confidence level, in (0, 1)."""
    periods_per_year: float = 1.0
    """Sharpe ratios are scaled by sqrt(this); 1 reports per-tick Sharpe."""


@dataclasses.dataclass
class StorageConfig:
    """The ``storage`` hook: a SQLite database (WAL) in the run directory."""

    file: str = "qtg.sqlite"
    """Database file name, inside the run directory."""
    orders: bool = False
    """Also store every order the engine saw, with its outcome (large)."""
    candles: list[int] = dataclasses.field(default_factory=lambda: [60, 300, 3600])
    """Candle intervals in ticks (three, like 1m / 5m / 1h bars)."""
    portfolio_every: int = 100
    """Ticks between portfolio snapshots (every agent's cash, equity and positions); 0 = off."""
    batch_ticks: int = 50
    """Ticks per write transaction: a kill loses at most the batch not yet committed."""
    queue_batches: int = 8
    """Batches waiting for the writer before the simulation waits for it."""


@dataclasses.dataclass
class SnapshotConfig:
    """Save points of the whole world (see qtg.core.snapshot)."""

    every: int = 0
    """Write a snapshot every this many ticks; 0 = only on demand (SIGUSR1, the TUI's ``w``)."""
    at_end: bool = False
    """Also write one when the run stops (its last tick, Ctrl-C or a stop request)."""
    dir: str = "snapshots"
    """Folder for snapshots, inside the run directory."""
    keep: int = 0
    """Keep only the newest this many periodic snapshots; 0 = keep all."""


@dataclasses.dataclass
class MetricsConfig:
    """The ``metrics`` hook: run-time metrics in metrics.jsonl and metrics.json."""

    every: int = 100
    """Ticks per line of metrics.jsonl (throughput, spreads, marks)."""


@dataclasses.dataclass
class UIConfig:
    """How the run is shown: ``none`` (progress bar and summary) or ``tui`` (Textual)."""

    name: str = "none"
    """none or tui."""
    fps: float = 10.0
    """Screen redraws per second (the simulation never waits for the screen)."""
    history: int = 400
    """Ticks of price history in the chart."""
    depth: int = 10
    """Price levels per side in the order book panel."""
    speed: float = 0.0
    """Starting speed limit in ticks per second; 0 = as fast as it runs."""
    paused: bool = False
    """Start paused."""


UI_NAMES = ("none", "tui")
HOOK_NAMES = ("progress", "metrics", "storage", "tui")
"""The hooks a config may name; :data:`qtg.hooks.HOOKS` has a factory for each."""

def _default_population() -> dict[str, Any]:
    """Every registered kind with its own Config defaults, and the default market's counts:
    20 market makers (two per symbol) and 100 noise traders; every other kind is off."""
    from systems.strategies import registry

    counts = {"market_maker": 20, "noise": 100}
    return {name: dataclasses.asdict(kind.Config()) | {"count": counts.get(name, 0)}
            for name, kind in sorted(registry().items())}


@dataclasses.dataclass
class Config:
    market: MarketConfig = dataclasses.field(default_factory=MarketConfig)
    fundamentals: FundamentalsConfig = dataclasses.field(default_factory=FundamentalsConfig)
    news: NewsConfig = dataclasses.field(default_factory=NewsConfig)
    population: dict[str, Any] = dataclasses.field(default_factory=_default_population)
    """Strategy kind -> its config entry (see each module in systems/strategies); by default
    every kind with its Config's defaults, 20 market makers and 100 noise traders."""
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
    seed: int = 0


def register() -> None:
    """Register the schema with Hydra's ConfigStore as ``schema``."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="schema", node=Config)


def to_config(cfg: DictConfig | Config | dict) -> Config:
    """Convert once to typed dataclasses and validate. Raises ConfigError."""
    if isinstance(cfg, Config):
        cfg = OmegaConf.structured(cfg)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), cfg)
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
    if isinstance(e, (ConfigAttributeError, ConfigKeyError)):
        allowed = allowed_keys(key.rsplit(".", 1)[0] if "." in key else "")
        return f"{key}: unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
    return f"{key or 'config'}: {str(e).splitlines()[0].strip()}"


def allowed_keys(path: str) -> list[str]:
    """Field names of the config node at dotted ``path`` ("" = the root)."""
    from systems.strategies import registry

    node: object = Config
    parts = [p for p in path.split(".") if p]
    if parts[:1] == ["population"]:
        kinds = registry()
        if len(parts) == 1:
            return sorted(kinds)
        node, parts = (kinds[parts[1]].Config if parts[1] in kinds else None), parts[2:]
    for part in parts:
        node = typing.get_type_hints(node).get(part) if dataclasses.is_dataclass(node) else None
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


def _kind_config(name: str, entry: Any):
    from systems.strategies import registry

    kinds = registry()
    if name not in kinds:
        raise ConfigError(
            f"population.{name}: unknown strategy kind; allowed: {', '.join(sorted(kinds))}"
        )
    if dataclasses.is_dataclass(entry):
        entry = OmegaConf.structured(entry)
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(kinds[name].Config), entry))
    except OmegaConfBaseException as e:
        raise ConfigError(omegaconf_line(e, prefix=f"population.{name}.")) from None


def validate(cfg: Config) -> None:
    """Check every value; raise ConfigError naming the first bad key."""
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
    for p in m.initial_prices or [m.initial_price]:  # above it every order would be refused
        if p > MAX_PRICE / SCALE:
            raise ConfigError(
                f"{price_key}: must be at most {MAX_PRICE / SCALE:.2f} (the largest order price), got {p}"
            )
    for p, units, tick in zip(m.initial_prices or [m.initial_price] * n, m.opening_prices(), m.ticks()):
        if not p > 0 or units % tick != 0:
            raise ConfigError(
                f"{price_key}: must be a positive multiple of the tick size {tick / SCALE}, got {p}"
            )

    out_key = "market.shares_outstanding_each" if m.shares_outstanding_each else "market.shares_outstanding"
    if (m.outstanding() < 1).any():
        raise ConfigError(f"{out_key}: must be >= 1, got {m.shares_outstanding_each or m.shares_outstanding}")
    if not 0.0 <= m.borrow_fraction <= 1.0:
        raise ConfigError(f"market.borrow_fraction: must be in [0, 1], got {m.borrow_fraction}")
    from components.money import MAX_RATE, RATE_SCALE

    if not 0.0 <= m.borrow_rate <= MAX_RATE / RATE_SCALE:
        raise ConfigError(f"market.borrow_rate: must be in [0, {MAX_RATE / RATE_SCALE}] per tick, got {m.borrow_rate}")

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

    if cfg.run.ticks < 1:
        raise ConfigError(f"run.ticks: must be >= 1, got {cfg.run.ticks}")
    if not cfg.resume:  # a resumed run's news comes from its snapshot
        from qtg.core.news import check_schedule_in_run

        try:
            check_schedule_in_run(cfg)
        except ValueError as e:  # "news.scheduled[i].tick: problem"
            raise ConfigError(str(e)) from None
    _check_hooks(cfg)
    if cfg.seed < 0:
        raise ConfigError(f"seed: must be >= 0, got {cfg.seed}")

    from systems.strategies import registry

    total = 0
    for name, kcfg in cfg.population.items():
        _check_kind(name, kcfg)
        check = getattr(registry()[name], "check", None)
        if check is not None and kcfg.count > 0:  # a kind that is off needs no coherent entry
            try:
                check(kcfg, n)
            except ValueError as e:  # "population.<kind>.<key>: problem"
                raise ConfigError(str(e)) from None
        total += kcfg.count
    if total < 1:
        raise ConfigError("population: at least one agent is needed (all counts are 0)")


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
    for key in ("portfolio_every",):
        if getattr(st, key) < 0:
            raise ConfigError(f"storage.{key}: must be >= 0, got {getattr(st, key)}")
    for key in ("batch_ticks", "queue_batches"):
        if getattr(st, key) < 1:
            raise ConfigError(f"storage.{key}: must be >= 1, got {getattr(st, key)}")
    sn = cfg.snapshot
    if sn.every < 0:
        raise ConfigError(f"snapshot.every: must be >= 0, got {sn.every}")
    if sn.keep < 0:
        raise ConfigError(f"snapshot.keep: must be >= 0, got {sn.keep}")
    if not sn.dir:
        raise ConfigError("snapshot.dir: must name a folder")
    if cfg.metrics.every < 1:
        raise ConfigError(f"metrics.every: must be >= 1, got {cfg.metrics.every}")
    ui = cfg.ui
    if ui.name not in UI_NAMES:
        raise ConfigError(f"ui.name: unknown ui '{ui.name}'; allowed: {', '.join(UI_NAMES)}")
    if not 0 < ui.fps <= 60:
        raise ConfigError(f"ui.fps: must be in (0, 60], got {ui.fps}")
    if ui.history < 10:
        raise ConfigError(f"ui.history: must be >= 10, got {ui.history}")
    if not 1 <= ui.depth <= 50:
        raise ConfigError(f"ui.depth: must be in [1, 50], got {ui.depth}")
    if ui.speed < 0:
        raise ConfigError(f"ui.speed: must be >= 0 (0 = unlimited), got {ui.speed}")
    if cfg.resume:
        from pathlib import Path

        if not Path(cfg.resume).is_file():
            raise ConfigError(f"resume: no snapshot file at '{cfg.resume}'")


def _check_kind(name: str, kcfg: Any) -> None:
    """Counts >= 0; every [lo, hi] range has two numbers, lo <= hi, within the field's
    bounds declared in the strategy module's ``BOUNDS``."""
    from systems.strategies import registry

    bounds: dict[str, tuple[float | None, float | None]] = getattr(
        registry()[name], "BOUNDS", {}
    )
    for f in dataclasses.fields(kcfg):
        value = getattr(kcfg, f.name)
        key = f"population.{name}.{f.name}"
        lo, hi = bounds.get(f.name, (0, None))
        if value is None or isinstance(value, str):  # choices and "unset": the module's check()
            continue
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list):
            if len(value) != 2:
                raise ConfigError(f"{key}: must be a range [lo, hi], got {value}")
            if value[0] > value[1]:
                raise ConfigError(f"{key}: range [lo, hi] needs lo <= hi, got {value}")
        for v in values:
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
                raise ConfigError(f"{key}: must be {allowed}, got {value}")


def config_dict(cfg: Config) -> dict:
    """The typed config as plain data (for summary files)."""
    return dataclasses.asdict(cfg) | {
        "population": {k: dataclasses.asdict(v) for k, v in cfg.population.items()}
    }
