"""Round-trip holders (tier 2), the one implementation of ``stop_loss`` and ``take_profit``.

A holder keeps shares, sells them all when the price crosses an *exit* threshold on one
side of its entry price, and buys back when the price crosses a *re-entry* threshold on
the other side of the exit price, or when a cool-down timer fires, whichever comes first;
then it takes the reference price as its new entry and arms a new exit. The two kinds are
mirror images, told apart by ``exit_side``:

=============  ==========================  ===============================  ============
kind           exit (``exit`` from entry)  re-entry (``reentry`` from exit)  cool-down
=============  ==========================  ===============================  ============
stop_loss      below, snapped down         above, snapped up                 ``cooldown``
take_profit    above, snapped up           below, snapped down               none (0)
=============  ==========================  ===============================  ============

An agent is in one of two states, told apart by its wake conditions: holding (its exit
armed) or waiting (its re-entry armed, and a timer where it has a cool-down). At the
opening every agent takes the reference price as its entry and arms its exit. Orders are
immediate-or-cancel ``collar`` through the reference (``_wake.react_rows``): the exit sells
the whole position in orders of at most ``size`` shares, the re-entry buys up to
``max_position``; what does not fill is dropped. Long only.

A kind module declares its ``Config`` (with its own names for the two distances), and
binds ``make_params`` (naming which fields are ``exit``, ``reentry`` and ``cooldown``),
``initial_holdings``, ``init_state`` and ``decide`` from here (see ``stop_loss``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.frame import Frame
from components.orders import OrderBatch
from components.wake import ABOVE, BELOW, INTERVAL, Wake
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._signal import (
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
from systems.ticks import ceil_tick, floor_tick

ROWS_PER_AGENT = 1  # an immediate-or-cancel order when the exit or the re-entry fires


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    exit: jax.Array  # f64[M] fraction from the entry price to the exit threshold
    reentry: jax.Array  # f64[M] fraction from the exit price to the re-entry threshold
    cooldown: jax.Array  # i64[M] ticks after an exit at which the agent buys back (0: never)


@struct.dataclass
class State:
    wake: Wake  # [M] holding: the exit armed; waiting: the re-entry (and a timer)
    entry: jax.Array  # i64[M] price of the last entry (units; 0 before the opening)


def make_params(
    cfg: TradeConfig,
    count: int,
    rng: np.random.Generator,
    n_symbols: int,
    exit: list[float],
    reentry: list[float],
    cooldown: list[int] | None = None,
) -> Params:
    """Draw each agent's limits, then its exit, re-entry and cool-down (ranges), in that
    order; ``cooldown=None``: no timer. Symbols round-robin."""
    return Params(
        trade=make_trade(cfg, count, rng, n_symbols),
        exit=jnp.asarray(rng.uniform(*exit, count), jnp.float64),
        reentry=jnp.asarray(rng.uniform(*reentry, count), jnp.float64),
        cooldown=jnp.asarray(draw_int(rng, cooldown, count) if cooldown is not None else np.zeros(count, np.int64)),
    )


def initial_holdings(cfg: TradeConfig, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and ``shares`` of its own symbol i64[M, S]."""
    return trade_holdings(cfg, params.trade, n_symbols)


def init_state(cfg: TradeConfig, params: Params, n_symbols: int) -> State:
    """No exit yet: each agent arms one at the opening."""
    sym = params.trade.symbol
    return State(wake=make_wake(sym), entry=jnp.zeros(sym.shape[0], jnp.int64))


def arm(w: Wake, side: int, where: jax.Array, ref: jax.Array, frac: jax.Array, tick: jax.Array) -> Wake:
    """Set the threshold on ``side`` (BELOW or ABOVE) ``frac`` beyond ``ref``, snapped
    outward to the tick grid, where ``where``."""
    if side == BELOW:
        return set_below(w, where, floor_tick(ref * (1.0 - frac), tick))
    return set_above(w, where, ceil_tick(ref * (1.0 + frac), tick))


def disarm(w: Wake, side: int, where: jax.Array) -> Wake:
    """Remove the threshold on ``side`` (BELOW or ABOVE) where ``where``."""
    return clear_below(w, where) if side == BELOW else clear_above(w, where)


def decide(
    exit_side: int,
    static: WorldStatic,
    kind: KindStatic,
    world: WorldParams,
    p: Params,
    state: WorldState,
    frame: Frame,
    key: jax.Array,
) -> tuple[OrderBatch, State]:
    """Returns 1 row per agent and the agents' new conditions. ``exit_side``: BELOW (a
    stop) or ABOVE (a profit target), static; the re-entry is on the other side."""
    del key  # deterministic given the market
    back_side = ABOVE if exit_side == BELOW else BELOW
    s: State = state.kinds[kind.name]
    w = s.wake
    fired, reason, last = evaluate(w, world, state)
    rows = kind.start + jnp.arange(kind.count)
    sym = p.trade.symbol
    held = state.wallet.position[rows, sym]
    out = fired & has(reason, exit_side)
    back = fired & has(reason, back_side | INTERVAL) & ~out
    want = jnp.where(out, -held, jnp.where(back, jnp.maximum(p.trade.max_position - held, 0), 0))
    orders = react_rows(static, kind, world, p.trade, state, frame, want)

    ref, tick = frame.view.ref[sym], world.tick_size[sym]
    # Out: drop the exit, wait for the re-entry or the cool-down.
    w = disarm(w, exit_side, out)
    w = arm(w, back_side, out, ref, p.reentry, tick)
    w = set_interval(w, out & (p.cooldown > 0), p.cooldown, state.tick)
    # Back in (or the opening): a new entry and a new exit.
    enter = back | idle(w)
    entry = jnp.where(enter, jnp.round(ref).astype(jnp.int64), s.entry)
    w = clear_interval(disarm(w, back_side, enter), enter)
    w = arm(w, exit_side, enter, ref, p.exit, tick)
    return orders, State(wake=observe(w, fired, reason, state.tick, last), entry=entry)
