"""Market makers: two-sided quotes around the reference price with inventory skew.

Each maker quotes one symbol. Its quotes are centred on a blend of the symbol's fair
value and the reference price (``anchor`` is the fair value's weight). Its bid and ask
sit ``half_spread`` (a fraction of that centre) either side of it, both shifted against its inventory: a
maker long of its target leans its quotes down to sell, a short one leans up. Past
``max_inventory`` from target it stops quoting the side that would grow the imbalance.
Quote sizes are capped by the cash and shares not already reserved by resting orders.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.frame import Frame
from components.money import floor_div
from components.orders import OrderBatch, Side
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._rows import (
    available_cash,
    available_shares,
    holdings_in_own_symbol,
    interleave,
    quote_rows,
)
from systems.ticks import ceil_tick, floor_tick

KIND = "market_maker"
ROWS_PER_AGENT = 2  # bid row, ask row
OPENS_BOOK = True  # quotes in the opening tick


@dataclasses.dataclass
class Config:
    count: int = setting(2)
    half_spread: list[float] = setting([0.0005, 0.0015], lo=1e-05, hi=0.5, doc=(
        "Range of half-spreads, as a fraction of the reference price."))
    quote_size: list[int] = setting([50, 150], lo=1, doc="Range of quote sizes in shares.")
    max_inventory: list[int] = setting([2_000, 4_000], lo=1, doc=(
        "Range of the largest distance from target inventory, in shares."))
    skew: list[float] = setting([0.5, 1.0], hi=10.0, doc=(
        "Range of inventory skew: 1 shifts quotes by a full half-spread at max inventory."))
    cash: float = setting(1_000_000.0, doc="Starting cash per maker, in currency.")
    shares: int = setting(2_000, doc=(
        "Starting (and target) inventory per maker in its symbol, in shares (taken from the symbol's "
        'shares outstanding).'))
    anchor: list[float] = setting([0.8, 1.0], hi=1.0, doc=(
        "Range of the fair value's weight in the quote centre (0: the reference price only)."))


@struct.dataclass
class Params:
    symbol: jax.Array  # i32[M]
    half_spread: jax.Array  # f64[M] fraction of reference price
    quote_size: jax.Array  # i64[M] shares
    max_inventory: jax.Array  # i64[M] shares
    skew: jax.Array  # f64[M]
    target: jax.Array  # i64[M] shares
    anchor: jax.Array  # f64[M] weight of the fair value in the quote centre


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each maker's parameters uniformly from the configured ranges."""
    return Params(
        symbol=jnp.asarray(np.arange(count) % n_symbols, jnp.int32),
        half_spread=jnp.asarray(rng.uniform(*cfg.half_spread, count), jnp.float64),
        quote_size=jnp.asarray(rng.integers(cfg.quote_size[0], cfg.quote_size[1] + 1, count)),
        max_inventory=jnp.asarray(
            rng.integers(cfg.max_inventory[0], cfg.max_inventory[1] + 1, count)
        ),
        skew=jnp.asarray(rng.uniform(*cfg.skew, count), jnp.float64),
        target=jnp.full(count, cfg.shares, jnp.int64),
        anchor=jnp.asarray(rng.uniform(*cfg.anchor, count), jnp.float64),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return holdings_in_own_symbol(cfg.cash, cfg.shares, params.symbol, n_symbols)


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> OrderBatch:
    """Quote both sides. Returns 2 rows per maker (bid, ask), ``count * 2`` rows."""
    del key  # makers are deterministic given the market
    rows = kind.start + jnp.arange(kind.count)
    sym = p.symbol
    tick = world.tick_size[sym]
    view = frame.view
    ref = p.anchor * view.fair[sym] + (1.0 - p.anchor) * view.ref[sym]
    inventory = state.wallet.position[rows, sym]
    imbalance = (inventory - p.target) / p.max_inventory
    shift = -p.skew * p.half_spread * ref * jnp.clip(imbalance, -1.0, 1.0)
    bid = floor_tick(ref * (1.0 - p.half_spread) + shift, tick)
    ask = jnp.maximum(ceil_tick(ref * (1.0 + p.half_spread) + shift, tick), bid + tick)

    # Re-quoting a live order keeps its reservation until the modify lands, so the
    # affordable size counts the live quote as still reserved.
    bid_qty = jnp.minimum(p.quote_size, floor_div(jnp.maximum(available_cash(state, rows), 0), bid))
    bid_qty = jnp.where(inventory - p.target < p.max_inventory, bid_qty, 0)
    ask_qty = jnp.minimum(p.quote_size, jnp.maximum(available_shares(state, rows, sym), 0))
    ask_qty = jnp.where(p.target - inventory < p.max_inventory, ask_qty, 0)

    n = static.n_agents
    bids = quote_rows(n, state, rows, int(Side.BUY), sym, bid, bid_qty)
    asks = quote_rows(n, state, rows, int(Side.SELL), sym, ask, ask_qty)
    return interleave(bids, asks)
