"""News reactors (tier 2): wake on news about their own symbol and trade toward fair value.

Each agent subscribes to the event kinds listed in ``subscribe`` (a comma-separated list of
``earnings``, ``guidance``, ``rate``, ``sector``) on its own symbol (``_wake.EVENT``,
scope ``OWN``): it wakes at tick t when an event of one of those kinds touched its symbol
in tick t - 1 (a rate decision touches every symbol, sector news every symbol of the
sector). It then compares the symbol's fair value, which already includes the news, with
the reference price: with ``gap = fair / ref - 1``, it buys ``size`` shares if
``gap > margin``, sells ``size`` shares (no more than it holds) if ``gap < -margin``, and
does nothing inside the margin. One immediate-or-cancel order ``collar`` through the
reference (``_wake.react_rows``), capped by ``max_position``, cash and shares. Long only.
Its subscription does not change during a run.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.frame import Frame
from components.orders import OrderBatch
from components.schema import setting
from components.wake import EVENT, OWN, Wake
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._signal import Trade, TradeConfig, make_trade, trade_holdings
from systems.strategies._wake import (
    evaluate,
    has,
    make_wake,
    observe,
    react_rows,
    subscription,
)

KIND = "news_reactor"
TIER = 2
ROWS_PER_AGENT = 1  # an immediate-or-cancel order when subscribed news arrives


@dataclasses.dataclass
class Config(TradeConfig):
    shares: int = setting(100, doc="Starting shares per agent in its symbol (what it sells on bad news).")
    subscribe: str = setting("earnings,guidance,sector", doc=(
        "Event kinds that wake an agent, comma-separated: earnings, guidance, rate, sector."))
    margin: list[float] = setting([0.002, 0.01], hi=1.0, doc=(
        "Range of the smallest |fair / price - 1| an agent trades on (fraction)."))


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    margin: jax.Array  # f64[M] fraction
    events: jax.Array  # i32[] subscribed event kinds, bit mask (1 << EVENT_KINDS index)


@struct.dataclass
class State:
    wake: Wake  # [M] news subscription on the agent's own symbol


def check(cfg: Config, n_symbols: int) -> None:
    """``subscribe`` names at least one known event kind."""
    try:
        mask = subscription(cfg.subscribe)
    except ValueError as e:
        raise ValueError(f"population.{KIND}.subscribe: {e}") from None
    if mask == 0:
        raise ValueError(f"population.{KIND}.subscribe: name at least one event kind, got '{cfg.subscribe}'")


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's limits and margin; symbols round-robin."""
    check(cfg, n_symbols)
    return Params(
        trade=make_trade(cfg, count, rng, n_symbols),
        margin=jnp.asarray(rng.uniform(*cfg.margin, count), jnp.float64),
        events=jnp.asarray(subscription(cfg.subscribe), jnp.int32),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and ``shares`` of its own symbol i64[M, S]."""
    return trade_holdings(cfg, params.trade, n_symbols)


def init_state(cfg: Config, params: Params, n_symbols: int) -> State:
    """Each agent subscribes to the configured kinds on its own symbol."""
    return State(wake=make_wake(params.trade.symbol, events=params.events, scope=OWN))


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[OrderBatch, State]:
    """Returns 1 row per agent and the agents' (unchanged) subscriptions."""
    del key  # deterministic given the market
    w = state.kinds[KIND].wake
    fired, reason, last = evaluate(w, world, state)
    view, sym = frame.view, p.trade.symbol
    ref = view.ref[sym]
    gap = view.fair[sym] / jnp.where(ref > 0, ref, 1.0) - 1.0
    side = jnp.where(gap > p.margin, 1, jnp.where(gap < -p.margin, -1, 0))
    want = jnp.where(fired & has(reason, EVENT) & (ref > 0), side * p.trade.size, 0)
    orders = react_rows(static, kind, world, p.trade, state, frame, want)
    return orders, State(wake=observe(w, fired, reason, state.tick, last))
