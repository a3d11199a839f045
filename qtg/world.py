"""World assembly: a typed Config -> static, params, initial state and the engine."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from components.agents import NO_ORDER, SLOTS, OrderSlots, Wallet
from components.indicators import IndicatorSpec
from components.risk import RiskSpec
from components.market import MarketState
from components.orders import STP
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from qtg.config import Config
from systems.indicators import init_indicators
from systems.measure import equity
from systems.risk import init_risk
from systems.strategies import registry


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
    kinds, kind_params, cash, position = [], {}, [], []
    spec = IndicatorSpec()
    start = batch_start = 0
    # Sorted by name: the row layout (and so every trade) must not depend on the order
    # in which a config happens to list its kinds.
    for name, kcfg in sorted(cfg.population.items()):
        if kcfg.count == 0:
            continue
        mod = strategies[name]
        kind = KindStatic(name, start, kcfg.count, mod.ROWS_PER_AGENT, batch_start)
        p = mod.make_params(kcfg, kcfg.count, rng, n_sym)
        c, pos = mod.initial_holdings(kcfg, p, n_sym)
        kinds.append(kind)
        if hasattr(mod, "indicators"):  # the series this kind's decide reads
            spec = spec.merge(mod.indicators(kcfg))
        kind_params[name] = p
        cash.append(c)
        position.append(pos)
        start += kind.count
        batch_start += kind.batch_rows

    n = start
    static = WorldStatic(
        n_agents=n, n_symbols=n_sym, symbols=tuple(cfg.market.symbols), kinds=tuple(kinds),
        indicators=spec,
        risk=RiskSpec(**dataclasses.asdict(cfg.risk)),
    )
    tick, price = cfg.market.ticks(), cfg.market.opening_prices()
    params = WorldParams(
        tick_size=jnp.asarray(tick), initial_price=jnp.asarray(price), kinds=kind_params
    )
    zeros_s = jnp.zeros(n_sym, jnp.int64)
    state = WorldState(
        wallet=Wallet(
            cash=jnp.asarray(np.concatenate(cash)), position=jnp.asarray(np.concatenate(position))
        ),
        slots=OrderSlots(
            id=jnp.full((n, SLOTS), NO_ORDER, jnp.int64),
            symbol=jnp.zeros((n, SLOTS), jnp.int32),
            price=jnp.zeros((n, SLOTS), jnp.int64),
            remaining=jnp.zeros((n, SLOTS), jnp.int64),
        ),
        market=MarketState(
            bid=zeros_s, ask=zeros_s, bid_qty=zeros_s, ask_qty=zeros_s,
            last=jnp.asarray(price), high=jnp.asarray(price), low=jnp.asarray(price),
            volume=zeros_s,
        ),
        indicators=init_indicators(spec, n_sym),
        risk=None,
        tick=jnp.asarray(0, jnp.int64),
        key=jax.random.key(cfg.seed),
    )
    # Risk starts from each agent's equity at the opening price.
    state = state.replace(risk=init_risk(static.risk, equity(state)))
    return World(static, params, state)


def make_engine_for(cfg: Config, static: WorldStatic):
    """The configured matching engine for the world's symbols."""
    from systems.matching import make_engine

    return make_engine(cfg.engine.name, cfg.market.ticks(), int(STP[cfg.engine.stp.upper()]))
