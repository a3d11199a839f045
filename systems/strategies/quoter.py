"""Quoters: learners that make a market, their two-sided quotes set from outside the tick
(the market-making task, ``qtg.rl.market_making``).

Each agent quotes one symbol (assigned round robin). Its action is an integer in
``[0, (levels + 1) ** 2)`` held in the kind's state (``QuoterState.action``), which the
environment sets before each tick: action ``a`` is the pair of levels ``(a // (levels + 1),
a % (levels + 1))``, the bid's and the ask's. Level ``0`` quotes nothing on that side (a
live quote there is cancelled); level ``l >= 1`` quotes ``l * step`` (a fraction) from
the reference price, the bid rounded down to the tick and the ask up, so action ``0``
withdraws both quotes and ``(l, l)`` quotes a symmetric spread of ``2 * l * step``.

A quote is ``size`` shares, less where a limit binds: a bid never takes the position past
``max_position`` nor needs more than the unreserved cash; an ask never takes it past
``max_short`` short (where the market allows shorts) nor offers more than the unreserved
shares plus that room. A quote moves by MODIFY (``_rows.quote_rows``); a live quote that
could only be re-sized to nothing because it still backs itself stays where it is
(``_rows.two_sided_quotes``), as a market maker's does. An action stays in force until it is
set again; a world built from a config starts every quoter with no quotes.

What a quoter sees is ``systems.features`` (the observation contract of the environments).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.indicators import IndicatorSpec
from components.money import floor_div
from components.orders import OrderBatch
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.features import INDICATORS
from systems.strategies._rows import available_cash, available_shares, two_sided_quotes
from systems.strategies._signal import Trade, TradeConfig, make_trade, trade_holdings
from systems.strategies.learner import set_actions
from systems.ticks import ceil_tick, floor_tick

KIND = "quoter"
ROWS_PER_AGENT = 2  # bid row, ask row
EXTERNAL = True  # its quotes are set from outside the tick (qtg.rl)


@dataclasses.dataclass
class Config(TradeConfig):
    size: list[int] = setting([100, 100], lo=1, doc="Range of quote sizes in shares (each agent draws one).")
    levels: int = setting(4, lo=1, hi=16, doc=(
        "Quote levels per side: actions are 0..(levels+1)**2-1, the pair (bid level, ask level); level 0 "
        "quotes nothing, level l quotes l * step from the reference price."))
    step: float = setting(0.0002, lo=1e-06, hi=0.1, doc="Distance of one quote level from the reference price (fraction).")
    max_short: int = setting(0, doc="Shares an agent may be short, where the market allows shorts (0: long only).")


@struct.dataclass
class Params:
    """Per-agent parameters, one row per quoter (``trade.collar`` is unused)."""

    trade: Trade
    levels: jax.Array  # i64[M]
    step: jax.Array  # f64[M] fraction of the reference price per level


@struct.dataclass
class QuoterState:
    """The quoters' own state: the action in force, one per agent."""

    action: jax.Array  # i32[M] in [0, (levels + 1) ** 2)


def indicators(cfg: Config) -> IndicatorSpec:
    """The series a quoter's observation reads (``systems.features``)."""
    del cfg
    return INDICATORS


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    return Params(trade=make_trade(cfg, count, rng, n_symbols), levels=jnp.full(count, cfg.levels, jnp.int64),
                  step=jnp.full(count, cfg.step, jnp.float64))


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    return trade_holdings(cfg, params.trade, n_symbols)


def init_state(cfg: Config, params: Params, n_symbols: int) -> QuoterState:
    """Every quoter without quotes (action 0)."""
    del cfg, n_symbols
    return QuoterState(action=jnp.zeros(params.levels.shape, jnp.int32))


def sides(params: Params, action: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The (bid level, ask level) of each action, each in ``[0, levels]``. i64[M] each"""
    width = params.levels + 1
    a = jnp.clip(action.astype(jnp.int64), 0, width * width - 1)
    return a // width, a % width


def action_of(params: Params, bid_level: jax.Array, ask_level: jax.Array) -> jax.Array:
    """The action quoting ``bid_level`` and ``ask_level`` (each clipped to ``[0, levels]``). i32[M]"""
    width = params.levels + 1
    return (jnp.clip(bid_level, 0, params.levels) * width + jnp.clip(ask_level, 0, params.levels)).astype(jnp.int32)


def with_actions(state: WorldState, action: jax.Array) -> WorldState:
    """``state`` with every quoter's action set to ``action`` (i32[M], or one for all)."""
    return set_actions(state, KIND, action)


def decide(static: WorldStatic, kind: KindStatic, world: WorldParams, params: Params, state: WorldState,
           frame, key: jax.Array) -> tuple[OrderBatch, QuoterState]:
    """Each quoter's action in force -> its bid and ask rows; its state unchanged."""
    del key
    own = state.kinds[KIND]
    rows = kind.start + jnp.arange(kind.count)
    t = params.trade
    sym = t.symbol
    tick = world.tick_size[sym]
    ref = frame.view.ref[sym]
    bid_level, ask_level = sides(params, own.action)
    bid = floor_tick(ref * (1.0 - bid_level * params.step), tick)
    ask = jnp.maximum(ceil_tick(ref * (1.0 + ask_level * params.step), tick), bid + tick)
    held = state.wallet.position[rows, sym]
    can_bid = (bid_level > 0) & (ref > 0) & (held < t.max_position)
    can_ask = (ask_level > 0) & (ref > 0) & (held > -world.max_short[rows])
    bid_qty = jnp.minimum(jnp.minimum(t.size, t.max_position - held),
                          floor_div(jnp.maximum(available_cash(state, rows), 0), bid))
    ask_qty = jnp.minimum(jnp.minimum(t.size, held + world.max_short[rows]),
                          available_shares(state, rows, sym) + world.max_short[rows])
    bid_qty = jnp.where(can_bid, jnp.maximum(bid_qty, 0), 0)
    ask_qty = jnp.where(can_ask, jnp.maximum(ask_qty, 0), 0)
    return two_sided_quotes(static.n_agents, state, rows, sym, bid, ask, bid_qty, ask_qty, can_bid, can_ask), own
