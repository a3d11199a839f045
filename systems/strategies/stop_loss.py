"""Stop-loss holders (tier 2): hold shares, sell them when the price falls through a stop,
buy back on a rebound or after a cool-down, and set a new stop.

An agent is in one of two states, told apart by its wake conditions:

* holding (a stop is armed, ``below > 0``): the stop is ``stop`` below its entry price
  (snapped down to the tick grid). When the close crosses down through it
  (``_wake.BELOW``) the agent sells its whole position (in orders of at most ``size``
  shares) and moves to waiting: it removes the stop and arms a re-entry threshold
  ``reentry`` above the exit price (the reference price at the stop, snapped up) and a
  ``cooldown`` timer;
* waiting (``above > 0`` and a timer): when the close crosses up through the re-entry
  threshold (``_wake.ABOVE``) or the timer fires (``_wake.INTERVAL``), whichever comes
  first, it buys back up to ``max_position`` shares, takes the reference price as its new
  entry, removes the re-entry threshold and the timer and arms a new stop.

Orders are immediate-or-cancel ``collar`` through the reference (``_wake.react_rows``);
what does not fill is dropped. At the opening every agent takes the reference price as its
entry and arms its stop. Long only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.orders import OrderBatch
from components.wake import ABOVE, BELOW, INTERVAL, Wake
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.ticks import ceil_tick, floor_tick
from systems.strategies._signal import (
    TRADE_BOUNDS,
    Trade,
    TradeConfig,
    draw_int,
    make_trade,
    trade_holdings,
)
from systems.strategies._wake import (
    clear_above,
    clear_below,
    clear_interval,
    evaluate,
    has,
    idle,
    make_wake,
    observe,
    react_rows,
    set_above,
    set_below,
    set_interval,
)

KIND = "stop_loss"
TIER = 2
ROWS_PER_AGENT = 1  # an immediate-or-cancel order when the stop or the re-entry fires


@dataclasses.dataclass
class Config(TradeConfig):
    size: list[int] = dataclasses.field(default_factory=lambda: [200, 500])
    """Range of per-order sizes in shares: the most sold at the stop or bought back at once."""
    shares: int = 200
    """Starting shares per agent in its symbol (the position the stop protects)."""
    stop: list[float] = dataclasses.field(default_factory=lambda: [0.01, 0.03])
    """Range of the stop's distance below the entry price (fraction)."""
    reentry: list[float] = dataclasses.field(default_factory=lambda: [0.005, 0.02])
    """Range of the re-entry threshold's distance above the exit price (fraction)."""
    cooldown: list[int] = dataclasses.field(default_factory=lambda: [20, 50])
    """Range of the ticks after a stop at which an agent buys back anyway."""


BOUNDS = {  # allowed values of each Config field (default: >= 0)
    **TRADE_BOUNDS,
    "stop": (0.0001, 0.9),
    "reentry": (0.0, 1.0),
    "cooldown": (1, None),
}


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    stop: jax.Array  # f64[M] fraction below the entry
    reentry: jax.Array  # f64[M] fraction above the exit
    cooldown: jax.Array  # i64[M] ticks


@struct.dataclass
class State:
    wake: Wake  # [M] holding: the stop in ``below``; waiting: re-entry in ``above`` and a timer
    entry: jax.Array  # i64[M] price of the last entry (units; 0 before the opening)


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's limits, stop, re-entry and cool-down; symbols round-robin."""
    return Params(
        trade=make_trade(cfg, count, rng, n_symbols),
        stop=jnp.asarray(rng.uniform(*cfg.stop, count), jnp.float64),
        reentry=jnp.asarray(rng.uniform(*cfg.reentry, count), jnp.float64),
        cooldown=jnp.asarray(draw_int(rng, cfg.cooldown, count)),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and ``shares`` of its own symbol i64[M, S]."""
    return trade_holdings(cfg, params.trade, n_symbols)


def init_state(cfg: Config, params: Params, n_symbols: int) -> State:
    """No stop yet: each agent arms one at the opening."""
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
    stopped = fired & has(reason, BELOW)
    back = fired & has(reason, ABOVE | INTERVAL) & ~stopped
    want = jnp.where(stopped, -held, jnp.where(back, jnp.maximum(p.trade.max_position - held, 0), 0))
    orders = react_rows(static, kind, world, p.trade, state, frame, want)

    ref, tick = frame.view.ref[sym], world.tick_size[sym]
    # Stopped out: drop the stop, wait for a rebound or the cool-down.
    w = clear_below(w, stopped)
    w = set_above(w, stopped, ceil_tick(ref * (1.0 + p.reentry), tick))
    w = set_interval(w, stopped, p.cooldown, state.tick)
    # Back in (or the opening): a new entry and a new stop.
    enter = back | idle(w)
    entry = jnp.where(enter, jnp.round(ref).astype(jnp.int64), s.entry)
    w = clear_interval(clear_above(w, enter), enter)
    w = set_below(w, enter, floor_tick(ref * (1.0 - p.stop), tick))
    return orders, State(wake=observe(w, fired, reason, state.tick, last), entry=entry)
