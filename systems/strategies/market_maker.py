"""Market makers: two-sided quotes around their own estimate, wider when the market is
volatile or the maker's inventory is out of line (after Avellaneda and Stoikov 2008).

Each maker quotes one symbol around its own estimate of value, which it keeps from tick
to tick (its state; the opening reference price at first). Each tick the estimate moves
by ``exp(impact * q)`` where ``q`` is the shares the symbol's makers sold, net, since they
last quoted (negative when they bought): makers learn from the order flow, as Kyle's
(1985) dealer does, then by the last tick's public news, then
``anchoring * anchor`` of the way to the fair value (``_rows.value_estimate``:
``market.anchoring``, the market's speed of price discovery, times the maker's own
relative ``anchor``): makers follow the order flow and learn the fair value slowly.
The quotes' inventory shift is not part of the estimate, so it does not compound into a
drift of the price.

Its half-spread is ``half_spread + vol_spread * ATR(vol_period) / centre`` (a fraction of
the centre; the ATR term is 0 until the ATR is ready), times ``1 + inventory_spread *
|imbalance|`` where ``imbalance`` is the distance from target inventory over
``max_inventory``, clipped to [-1, 1]. Both quotes are shifted against the inventory
by ``skew * half-spread * imbalance`` (the reservation price of Avellaneda and Stoikov:
a maker long of its target leans its quotes down to sell, a short one up). Past
``max_inventory`` from target it stops quoting the side that would grow the imbalance.
Quote sizes are capped by the cash and shares not already reserved by resting orders.
In the ticks ``[withdraw[0], withdraw[1])`` the makers withdraw liquidity: they quote
``withdraw_spread`` times their usual half-spread and move their estimates as many times
as far per share traded (Kyle's lambda rises as depth falls), or quote nothing at all
when it is 0 (``+experiment=liquidity_crash``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.frame import Frame
from components.indicators import IndicatorSpec
from components.money import SCALE, floor_div
from components.orders import OrderBatch
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._rows import (
    available_cash,
    available_shares,
    holdings_in_own_symbol,
    two_sided_quotes,
    value_estimate,
)
from systems.ticks import ceil_tick, floor_tick

KIND = "market_maker"
ROWS_PER_AGENT = 2  # bid row, ask row
OPENS_BOOK = True  # quotes in the opening tick


@dataclasses.dataclass
class Config:
    count: int = setting(2)
    half_spread: list[float] = setting([0.0001, 0.0008], lo=1e-05, hi=0.5, doc=(
        "Range of base half-spreads, as a fraction of the quote centre."))
    vol_spread: list[float] = setting([0.1, 0.2], hi=100.0, doc=(
        "Range of the half-spread added per unit of ATR(vol_period) / centre (0: no widening with volatility)."))
    vol_period: int = setting(20, lo=1, hi=10_000, doc="ATR period of the volatility widening, in ticks.")
    inventory_spread: list[float] = setting([0.5, 1.0], hi=100.0, doc=(
        "Range of the half-spread's relative widening at max inventory (0: none)."))
    quote_size: list[int] = setting([200, 500], lo=1, doc="Range of quote sizes in shares.")
    max_inventory: list[int] = setting([5_000, 10_000], lo=1, doc=(
        "Range of the largest distance from target inventory, in shares."))
    skew: list[float] = setting([0.5, 1.0], hi=10.0, doc=(
        "Range of inventory skew: 1 shifts quotes by a full half-spread at max inventory."))
    cash: float = setting(1_000_000.0, doc="Starting cash per maker, in currency.")
    shares: int = setting(5_000, doc=(
        "Starting (and target) inventory per maker in its symbol, in shares (taken from the symbol's "
        'shares outstanding).'))
    withdraw: list[int] = setting([0, 0], hi=10**9, doc=(
        "Ticks [start, stop) in which the makers post no quotes and cancel their live ones (a liquidity "
        "withdrawal; equal ends: never)."))
    withdraw_spread: float = setting(0.0, hi=1000.0, doc=(
        "During the withdrawal, quote this many times the usual half-spread and move the estimate as many "
        "times as far per share (0: no quotes at all)."))
    impact: list[float] = setting([1.5e-06, 3e-06], hi=0.01, doc=(
        "Range of the estimate's log move per share the symbol's makers sold, net (Kyle's lambda; "
        "bought: down)."))
    anchor: list[float] = setting([0.8, 1.0], hi=1.0, doc=(
        "Range of the maker's pull toward fair value, relative to ``market.anchoring`` (0: the reference "
        "price only)."))


@struct.dataclass
class Params:
    symbol: jax.Array  # i32[M]
    half_spread: jax.Array  # f64[M] base half-spread, fraction of the centre
    vol_spread: jax.Array  # f64[M] half-spread per unit of ATR / centre
    inventory_spread: jax.Array  # f64[M] relative widening at max inventory
    quote_size: jax.Array  # i64[M] shares
    max_inventory: jax.Array  # i64[M] shares
    skew: jax.Array  # f64[M]
    target: jax.Array  # i64[M] shares
    anchor: jax.Array  # f64[M] pull toward fair value, relative to market.anchoring
    impact: jax.Array  # f64[M] log move of the estimate per share the symbol's makers sold, net
    withdraw: jax.Array  # i64[2] ticks [start, stop) without quotes
    withdraw_spread: jax.Array  # f64[] half-spread multiple while withdrawn (0: no quotes)
    vol_period: int = struct.field(pytree_node=False, default=20)  # static


@struct.dataclass
class State:
    estimate: jax.Array  # f64[M] units: the maker's estimate of value (0: none yet)
    position: jax.Array  # i64[M] shares of its symbol it held when it last quoted


def indicators(cfg: Config) -> IndicatorSpec:
    """The ATR of the volatility widening (none when no maker widens)."""
    return IndicatorSpec(atr=(cfg.vol_period,)) if max(cfg.vol_spread) > 0 else IndicatorSpec()


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each maker's parameters uniformly from the configured ranges."""
    return Params(
        symbol=jnp.asarray(np.arange(count) % n_symbols, jnp.int32),
        half_spread=jnp.asarray(rng.uniform(*cfg.half_spread, count), jnp.float64),
        vol_spread=jnp.asarray(rng.uniform(*cfg.vol_spread, count), jnp.float64),
        inventory_spread=jnp.asarray(rng.uniform(*cfg.inventory_spread, count), jnp.float64),
        quote_size=jnp.asarray(rng.integers(cfg.quote_size[0], cfg.quote_size[1] + 1, count)),
        max_inventory=jnp.asarray(
            rng.integers(cfg.max_inventory[0], cfg.max_inventory[1] + 1, count)
        ),
        skew=jnp.asarray(rng.uniform(*cfg.skew, count), jnp.float64),
        target=jnp.full(count, cfg.shares, jnp.int64),
        anchor=jnp.asarray(rng.uniform(*cfg.anchor, count), jnp.float64),
        impact=jnp.asarray(rng.uniform(*cfg.impact, count), jnp.float64),
        withdraw=jnp.asarray(cfg.withdraw, jnp.int64),
        withdraw_spread=jnp.asarray(cfg.withdraw_spread, jnp.float64),
        vol_period=int(cfg.vol_period) if max(cfg.vol_spread) > 0 else 0,
    )


def init_state(cfg: Config, params: Params, n_symbols: int) -> State:
    """No estimate yet: the first quotes centre on the reference price."""
    count = params.symbol.shape[0]
    return State(estimate=jnp.zeros(count, jnp.float64), position=jnp.full(count, cfg.shares, jnp.int64))


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return holdings_in_own_symbol(cfg.cash, cfg.shares, params.symbol, n_symbols)


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[OrderBatch, State]:
    """Quote both sides. Returns 2 rows per maker (bid, ask), ``count * 2`` rows, and the
    makers' estimates."""
    del key  # makers are deterministic given the market
    rows = kind.start + jnp.arange(kind.count)
    sym = p.symbol
    tick = world.tick_size[sym]
    view = frame.view
    own = state.kinds[KIND]
    inventory = state.wallet.position[rows, sym]
    # What the last tick's trading says (Kyle's lambda): shares the symbol's makers sold
    # raise their estimates, shares they bought lower them. Every maker of a symbol reads
    # the same net flow (trades among makers cancel out), so their estimates move together.
    sold = jax.ops.segment_sum((own.position - inventory).astype(jnp.float64), sym, num_segments=static.n_symbols)
    away = (state.tick >= p.withdraw[0]) & (state.tick < p.withdraw[1])  # withdrawn: thin and jumpy
    impact = jnp.where(away & (p.withdraw_spread > 0), p.impact * p.withdraw_spread, p.impact)
    estimate = jnp.where(own.estimate > 0, own.estimate, view.ref[sym]) * jnp.exp(impact * sold[sym])
    centre = value_estimate(world, view, sym, p.anchor, estimate)
    imbalance = jnp.clip((inventory - p.target) / p.max_inventory, -1.0, 1.0)
    half = p.half_spread + p.vol_spread * _relative_atr(p, frame)[sym]
    half = half * (1.0 + p.inventory_spread * jnp.abs(imbalance))
    half = jnp.where(away, half * p.withdraw_spread, half)
    shift = -p.skew * half * centre * imbalance
    bid = floor_tick(centre * (1.0 - half) + shift, tick)
    ask = jnp.maximum(ceil_tick(centre * (1.0 + half) + shift, tick), bid + tick)

    # Re-quoting a live order keeps its reservation until the modify lands, so the
    # affordable size counts the live quote as still reserved.
    # A side is quoted within the inventory limit and while the makers have not withdrawn.
    gone = away & (p.withdraw_spread == 0)
    can_bid = (inventory - p.target < p.max_inventory) & ~gone
    can_ask = (p.target - inventory < p.max_inventory) & ~gone
    bid_qty = jnp.minimum(p.quote_size, floor_div(jnp.maximum(available_cash(state, rows), 0), bid))
    bid_qty = jnp.where(can_bid, bid_qty, 0)
    ask_qty = jnp.minimum(p.quote_size, jnp.maximum(available_shares(state, rows, sym), 0))
    ask_qty = jnp.where(can_ask, ask_qty, 0)

    # A live quote the maker cannot re-size (a modify is backed in full on top of the order
    # it replaces) stays where it is, rather than being cancelled every other tick.
    quoted = State(estimate=centre, position=inventory)
    return two_sided_quotes(static.n_agents, state, rows, sym, bid, ask, bid_qty, ask_qty, can_bid, can_ask), quoted


def _relative_atr(p: Params, frame: Frame) -> jax.Array:
    """ATR(vol_period) over the reference price per symbol, 0 until ready (or without
    widening). f64[S]"""
    ref = frame.view.ref
    if not p.vol_period:
        return jnp.zeros_like(ref)
    atr, ready = frame.indicators.atr_at(p.vol_period)  # currency; ref is in units
    return jnp.where(ready & (ref > 0), atr * SCALE / jnp.where(ref > 0, ref, 1.0), 0.0)

