"""World assembly: a typed Config -> static, params, initial state and the engine."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from components.agents import NO_ORDER, SLOTS, Lender, OrderSlots, Wallet
from components.indicators import IndicatorSpec
from components.market import MarketState
from components.money import RATE_SCALE
from components.orders import STP
from components.risk import RiskSpec
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from qtg.core.config import Config, ConfigError
from qtg.core.news import make_fundamentals
from systems.indicators import init_indicators
from systems.measure import equity
from systems.risk import init_risk
from systems.strategies import registry, rows_per_agent


@dataclasses.dataclass
class World:
    static: WorldStatic
    params: WorldParams
    state: WorldState


def build_world(cfg: Config) -> World:
    """Lay out the population as rows, draw per-agent parameters, set initial holdings.

    Parameters are drawn from a NumPy generator seeded by ``cfg.seed``; kinds are laid
    out in name order, skipping kinds with ``count == 0``.
    """
    strategies = registry()
    n_sym = len(cfg.market.symbols)
    rng = np.random.Generator(np.random.PCG64(cfg.seed))
    kinds, kind_params, kind_state, delayed, cash, position, max_short = [], {}, {}, {}, [], [], []
    spec = IndicatorSpec()
    start = batch_start = 0
    background = None
    # Sorted by rows per agent, then name: the row layout (and so every trade) must not
    # depend on the order in which a config happens to list its kinds, and kinds with the
    # same rows per agent sit side by side (validation checks each such run as one block).
    # A kind with a LAYOUT_NAME sorts by it (rl_policy sits where the learner it was
    # trained as sat, so its runs draw and trade as the training's market did).
    def rows_of(name, kcfg):
        return rows_per_agent(strategies[name], kcfg, n_sym)

    def layout_key(item):
        return rows_of(*item), getattr(strategies[item[0]], "LAYOUT_NAME", item[0]), item[0]

    for name, kcfg in sorted(cfg.population.items(), key=layout_key):
        if kcfg.count == 0:
            continue
        mod = strategies[name]
        if getattr(mod, "TIER", 1) == 3:  # the background pool: no rows (below)
            background = (mod, kcfg)
            continue
        rows = rows_of(name, kcfg)
        kind = KindStatic(
            name, start, kcfg.count, rows, batch_start,
            tier=getattr(mod, "TIER", 1), latency=int(getattr(kcfg, "latency", 0)),
        )
        p = mod.make_params(kcfg, kcfg.count, rng, n_sym)
        c, pos = mod.initial_holdings(kcfg, p, n_sym)
        kinds.append(kind)
        if hasattr(mod, "indicators"):  # the series this kind's decide reads
            spec = spec.merge(mod.indicators(kcfg))
        if hasattr(mod, "init_state"):  # a kind with state of its own (tier 2 conditions)
            kind_state[name] = mod.init_state(kcfg, p, n_sym)
        if kind.latency > 0:
            delayed[name] = _empty_batches(kind.latency, kind.batch_rows)
        kind_params[name] = p
        cash.append(c)
        position.append(pos)
        # Kinds whose config has ``max_short`` may sell short (where the market allows it);
        # the others are long only.
        short = int(getattr(kcfg, "max_short", 0)) if cfg.market.short_selling else 0
        max_short.append(np.full(kcfg.count, short, np.int64))
        start += kind.count
        batch_start += kind.batch_rows

    n = start
    bg_static = bg_params = bg_state = None
    if background is not None:
        mod, kcfg = background
        bg_static, bg_params, bg_state = mod.make_background(kcfg, n, n_sym, batch_start)
        spec = spec.merge(mod.indicators(kcfg))
    static = WorldStatic(
        n_agents=n, n_symbols=n_sym, symbols=tuple(cfg.market.symbols), kinds=tuple(kinds),
        sectors=cfg.market.sector_names(), sector_of=tuple(int(x) for x in cfg.market.sector_of()),
        indicators=spec,
        risk=RiskSpec(**dataclasses.asdict(cfg.risk)),
        short_selling=cfg.market.short_selling,
        locate=cfg.market.locate,
        background=bg_static,
    )
    if n == 0:
        raise ConfigError("population: the background pool needs at least one agent of another kind")
    position = np.concatenate(position)
    outstanding = cfg.market.outstanding()
    pool = cfg.market.pools()
    held = position.sum(axis=0) + (np.asarray(bg_state.position) if bg_state is not None else 0)
    check_float(cfg, held, outstanding, pool)
    tick, price = cfg.market.ticks(), cfg.market.opening_prices()
    news, fundamentals = make_fundamentals(cfg, n_sym, static.sectors, static.sector_of, tick)
    params = WorldParams(
        tick_size=jnp.asarray(tick),
        initial_price=jnp.asarray(price),
        outstanding=jnp.asarray(outstanding),
        pool=jnp.asarray(pool),
        borrow_rate=jnp.asarray(round(cfg.market.borrow_rate * RATE_SCALE), jnp.int64),
        max_short=jnp.asarray(np.concatenate(max_short)),
        news=news,
        anchoring=jnp.asarray(cfg.market.anchoring, jnp.float64),
        kinds=kind_params,
        background=bg_params,
    )
    zeros_s = jnp.zeros(n_sym, jnp.int64)
    state = WorldState(
        wallet=Wallet(
            cash=jnp.asarray(np.concatenate(cash)),
            position=jnp.asarray(position),
            borrowed=jnp.zeros((n, n_sym), jnp.int64),
            fees=jnp.zeros(n, jnp.int64),
        ),
        slots=OrderSlots(
            id=jnp.full((n, SLOTS), NO_ORDER, jnp.int64),
            symbol=jnp.zeros((n, SLOTS), jnp.int32),
            price=jnp.zeros((n, SLOTS), jnp.int64),
            remaining=jnp.zeros((n, SLOTS), jnp.int64),
        ),
        lender=Lender(
            lent=zeros_s, claimed=zeros_s, cash=jnp.asarray(0, jnp.int64), unpaid=jnp.asarray(0, jnp.int64)
        ),
        market=MarketState(
            bid=zeros_s, ask=zeros_s, bid_qty=zeros_s, ask_qty=zeros_s,
            last=jnp.asarray(price), high=jnp.asarray(price), low=jnp.asarray(price),
            volume=zeros_s,
        ),
        indicators=init_indicators(spec, n_sym),
        risk=None,
        fundamentals=fundamentals,
        tick=jnp.asarray(0, jnp.int64),
        key=jax.random.key(cfg.seed),
        kinds=kind_state,
        delayed=delayed,
        background=bg_state,
    )
    # Risk starts from each agent's equity at the opening price.
    state = state.replace(risk=init_risk(static.risk, equity(state), state.market.last))
    return World(static, params, state)


def _empty_batches(k: int, rows: int):
    """An OrderBatch [k, rows] of invalid rows: the empty latency queue of a kind."""
    from components.orders import OrderBatch

    z = lambda dt: jnp.zeros((k, rows), dt)
    return OrderBatch(
        valid=z(bool), id=jnp.full((k, rows), -1, jnp.int64), agent=z(jnp.int32), symbol=z(jnp.int32),
        side=z(jnp.int8), kind=z(jnp.int8), price=z(jnp.int64), qty=z(jnp.int64),
    )


def check_float(cfg: Config, held: np.ndarray, outstanding: np.ndarray, pool: np.ndarray) -> None:
    """The agents' opening holdings plus the borrow pool must fit in the shares outstanding
    (market makers' inventory is taken from the float). Raises ConfigError."""
    for name, h, o, p in zip(cfg.market.symbols, held, outstanding, pool):
        if h + p > o:
            raise ConfigError(
                f"market.shares_outstanding: {name} has {o:,} shares, fewer than the agents' opening "
                f"holdings ({h:,}) plus the borrow pool ({p:,}); raise it or lower the holdings"
            )


def make_engine_for(cfg: Config, static: WorldStatic):
    """The configured matching engine for the world's symbols."""
    from systems.matching import make_engine

    extra = {"capacity": cfg.engine.capacity} if cfg.engine.name == "device" else {}
    return make_engine(cfg.engine.name, cfg.market.ticks(), int(STP[cfg.engine.stp.upper()]), **extra)
