"""Take-profit holders (tier 2): hold shares, sell them when the price rises through a
profit target, and buy back on a dip below the exit price.

An agent is in one of two states, told apart by its wake conditions:

* holding (a target is armed, ``above > 0``): the target is ``target`` above its entry
  price (snapped up to the tick grid). When the close crosses up through it
  (``_wake.ABOVE``) the agent sells its whole position (in orders of at most ``size``
  shares), removes the target and arms a buy threshold ``dip`` below the exit price (the
  reference price at the sale, snapped down);
* waiting (``below > 0``): when the close crosses down through the buy threshold
  (``_wake.BELOW``) it buys back up to ``max_position`` shares, takes the reference price
  as its new entry, removes the buy threshold and arms a new target.

Orders are immediate-or-cancel ``collar`` through the reference (``_wake.react_rows``);
what does not fill is dropped. At the opening every agent takes the reference price as its
entry and arms its target. Long only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.orders import OrderBatch
from components.wake import ABOVE, BELOW, Wake
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.ticks import ceil_tick, floor_tick
from systems.strategies._signal import (
    TRADE_BOUNDS,
    Trade,
    TradeConfig,
    make_trade,
    trade_holdings,
)
from systems.strategies._wake import (
    clear_above,
    clear_below,
    evaluate,
    has,
    idle,
    make_wake,
    observe,
    react_rows,
    set_above,
    set_below,
)

KIND = "take_profit"
TIER = 2
ROWS_PER_AGENT = 1  # an immediate-or-cancel order when the target or the buy threshold fires


@dataclasses.dataclass
class Config(TradeConfig):
    size: list[int] = dataclasses.field(default_factory=lambda: [200, 500])
    """Range of per-order sizes in shares: the most sold at the target or bought back at once."""
    shares: int = 200
    """Starting shares per agent in its symbol."""
    target: list[float] = dataclasses.field(default_factory=lambda: [0.01, 0.03])
    """Range of the profit target's distance above the entry price (fraction)."""
    dip: list[float] = dataclasses.field(default_factory=lambda: [0.005, 0.02])
    """Range of the buy-back threshold's distance below the exit price (fraction)."""


BOUNDS = {  # allowed values of each Config field (default: >= 0)
    **TRADE_BOUNDS,
    "target": (0.0001, 10.0),
    "dip": (0.0, 0.9),
}


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    target: jax.Array  # f64[M] fraction above the entry
    dip: jax.Array  # f64[M] fraction below the exit


@struct.dataclass
class State:
    wake: Wake  # [M] holding: the target in ``above``; waiting: the buy threshold in ``below``
    entry: jax.Array  # i64[M] price of the last entry (units; 0 before the opening)


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's limits, target and dip; symbols round-robin."""
    return Params(
        trade=make_trade(cfg, count, rng, n_symbols),
        target=jnp.asarray(rng.uniform(*cfg.target, count), jnp.float64),
        dip=jnp.asarray(rng.uniform(*cfg.dip, count), jnp.float64),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and ``shares`` of its own symbol i64[M, S]."""
    return trade_holdings(cfg, params.trade, n_symbols)


def init_state(cfg: Config, params: Params, n_symbols: int) -> State:
    """No target yet: each agent arms one at the opening."""
    sym = params.trade.symbol
    return State(wake=make_wake(sym), entry=jnp.zeros(sym.shape[0], jnp.int64))


def decide(
    static: WorldStatic,
    kind: KindStatic,
    world: WorldParams,
    p: Params,
    state: WorldState,
    frame: dict,
    key: jax.Array,
) -> tuple[OrderBatch, State]:
    """Returns 1 row per agent and the agents' new conditions."""
    del key  # deterministic given the market
    s: State = state.kinds[KIND]
    w = s.wake
    fired, reason, last = evaluate(w, world, state)
    rows = kind.start + jnp.arange(kind.count)
    sym = p.trade.symbol
    held = state.wallet.position[rows, sym]
    took = fired & has(reason, ABOVE)
    back = fired & has(reason, BELOW) & ~took
    want = jnp.where(took, -held, jnp.where(back, jnp.maximum(p.trade.max_position - held, 0), 0))
    orders = react_rows(static, kind, world, p.trade, state, frame, want)

    ref, tick = frame.view.ref[sym], world.tick_size[sym]
    # Profit taken: drop the target, wait for a dip.
    w = clear_above(w, took)
    w = set_below(w, took, floor_tick(ref * (1.0 - p.dip), tick))
    # Back in (or the opening): a new entry and a new target.
    enter = back | idle(w)
    entry = jnp.where(enter, jnp.round(ref).astype(jnp.int64), s.entry)
    w = clear_below(w, enter)
    w = set_above(w, enter, ceil_tick(ref * (1.0 + p.target), tick))
    return orders, State(wake=observe(w, fired, reason, state.tick, last), entry=entry)
