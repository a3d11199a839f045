"""Threshold traders (tier 2): buy when the price crosses down through a buy threshold, sell
when it crosses up through a sell threshold, then move both thresholds around the new price.

Each agent keeps a band on its symbol: a buy threshold ``band`` below a centre price and a
sell threshold ``band`` above it (snapped outward to the tick grid; see ``_wake.band``).
It wakes only when the close crosses one of them (``_wake.BELOW`` / ``_wake.ABOVE``):
crossing down through the buy threshold it buys ``size`` shares, crossing up through the
sell threshold it sells ``size`` shares (long only: no more than it holds), each with one
immediate-or-cancel order ``collar`` through the reference (``_wake.react_rows``). Then it
removes the thresholds it had and sets new ones around the current reference price (the
mid), so it keeps trading in a band that follows the market. Agents with no thresholds
(the opening) arm theirs around the reference price the same way; the new thresholds are
in force from the next tick.
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
from components.wake import ABOVE, BELOW, Wake
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._signal import Trade, TradeConfig, make_trade, trade_holdings
from systems.strategies._wake import band, evaluate, has, idle, make_wake, observe, react_rows, set_above, set_below

KIND = "threshold_trader"
TIER = 2
ROWS_PER_AGENT = 1  # an immediate-or-cancel order when a threshold is crossed


@dataclasses.dataclass
class Config(TradeConfig):
    shares: int = setting(100, doc="Starting shares per agent in its symbol (what its first sales sell).")
    band: list[float] = setting([0.005, 0.02], lo=0.0001, hi=0.5, doc=(
        "Range of the distance of each threshold from the price it is set around (fraction)."))


@struct.dataclass
class Params:
    trade: Trade  # [M] symbol, size, max_position, collar
    band: jax.Array  # f64[M] fraction of the price


@struct.dataclass
class State:
    wake: Wake  # [M] buy threshold in ``below``, sell threshold in ``above``


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's limits and band; symbols are assigned round-robin."""
    return Params(
        trade=make_trade(cfg, count, rng, n_symbols),
        band=jnp.asarray(rng.uniform(*cfg.band, count), jnp.float64),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and ``shares`` of its own symbol i64[M, S]."""
    return trade_holdings(cfg, params.trade, n_symbols)


def init_state(cfg: Config, params: Params, n_symbols: int) -> State:
    """No thresholds yet: each agent arms its band at the opening."""
    return State(wake=make_wake(params.trade.symbol))


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[OrderBatch, State]:
    """Returns 1 row per agent and the agents' new thresholds."""
    del key  # deterministic given the market
    w = state.kinds[KIND].wake
    fired, reason, last = evaluate(w, world, state)
    buy, sell = fired & has(reason, BELOW), fired & has(reason, ABOVE)
    want = jnp.where(buy, p.trade.size, jnp.where(sell, -p.trade.size, 0))
    orders = react_rows(static, kind, world, p.trade, state, frame, want)

    sym = p.trade.symbol
    lo, hi = band(frame.view.ref[sym], p.band, world.tick_size[sym])
    move = fired | idle(w)
    w = set_below(set_above(w, move, hi), move, lo)
    return orders, State(wake=observe(w, fired, reason, state.tick, last))
