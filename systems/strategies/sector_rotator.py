"""Sector rotators (tier 2): on a timer and on sector news, shift the portfolio toward the
sectors whose news sentiment is positive.

Each agent wakes on its own timer of ``every`` ticks (the kind's first wakes are staggered
over the interval, ``_wake.stagger``) and on sector news anywhere in the market
(``_wake.EVENT``, scope ``ANY``); at every wake it restarts its timer. Woken, it sets
target weights over the symbols: each sector's score is the mean over its symbols of the
total sentiment (summed over event kinds, ``state.fundamentals.sentiment``), sector
weights are ``softmax(score / temperature)`` (equal when no sector has news), and a
sector's weight is split equally among its symbols. The target value of symbol s is
``invest * equity * weight[s]`` with equity = cash + shares at the reference prices. The
agent then sends two immediate-or-cancel orders ``collar`` through the reference: it sells
the most overweight symbol (largest value above target) and buys the most underweight one
(largest value below target), each at most ``size`` shares and no more than the gap.
The buy is sized on the cash before the sale's proceeds. Long only.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.frame import Frame
from components.fundamentals import EVENT_KINDS
from components.money import to_fixed
from components.orders import OrderBatch
from components.schema import setting
from components.wake import ANY, Wake
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._signal import Trade, draw_int
from systems.strategies._wake import (
    evaluate,
    make_wake,
    observe,
    react_rows,
    rearm,
    stagger,
)

KIND = "sector_rotator"
TIER = 2
ROWS_PER_AGENT = 2  # sell the most overweight symbol, buy the most underweight one

SECTOR_NEWS = 1 << EVENT_KINDS.index("sector")


@dataclasses.dataclass
class Config:
    count: int = setting(0)
    size: list[int] = setting([10, 50], lo=1, doc=(
        "Range of per-order sizes in shares (each agent draws one)."))
    collar: float = setting(0.02, hi=0.5, doc="How far through the reference an order may reach (fraction).")
    cash: float = setting(100_000.0, doc="Starting cash per agent, in currency.")
    shares: int = setting(50, doc="Starting shares per agent in every symbol.")
    every: list[int] = setting([20, 50], lo=1, doc=(
        "Range of the ticks between an agent's rebalances (its timer)."))
    temperature: list[float] = setting([0.02, 0.05], lo=1e-06, doc=(
        "Range of the softmax temperature over sector sentiment (lower: more concentrated)."))
    invest: float = setting(0.8, hi=1.0, doc="Fraction of equity an agent keeps in shares.")


@struct.dataclass
class Params:
    size: jax.Array  # i64[M] shares per order
    collar: jax.Array  # f64[M] fraction of the reference price
    every: jax.Array  # i64[M] ticks between rebalances
    temperature: jax.Array  # f64[M] softmax temperature over sector scores
    invest: jax.Array  # f64[] fraction of equity held in shares


@struct.dataclass
class State:
    wake: Wake  # [M] a timer and sector news anywhere


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's size, interval and temperature."""
    return Params(
        size=jnp.asarray(draw_int(rng, cfg.size, count)),
        collar=jnp.full(count, cfg.collar, jnp.float64),
        every=jnp.asarray(draw_int(rng, cfg.every, count)),
        temperature=jnp.asarray(rng.uniform(*cfg.temperature, count), jnp.float64),
        invest=jnp.asarray(cfg.invest, jnp.float64),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and ``shares`` of every symbol i64[M, S]."""
    count = params.size.shape[0]
    cash = np.full(count, to_fixed(cfg.cash), np.int64)
    return cash, np.full((count, n_symbols), int(cfg.shares), np.int64)


def init_state(cfg: Config, params: Params, n_symbols: int) -> State:
    """Timers staggered over each agent's interval; sector news anywhere."""
    count = params.every.shape[0]
    every = np.asarray(params.every)
    return State(wake=make_wake(
        np.zeros(count, np.int32), every=every, next_tick=stagger(count, every),
        events=SECTOR_NEWS, scope=ANY,
    ))


def target_weights(sentiment: jax.Array, sector_of: jax.Array, temperature: jax.Array) -> jax.Array:
    """Target weight of each symbol per agent, f64[M, S] (rows sum to 1).

    ``sentiment`` f64[K, S] per event kind; ``sector_of`` i32[S]; ``temperature`` f64[M].
    Sector score = mean total sentiment of its symbols; sector weights = softmax(score /
    temperature) over the sectors that have symbols; each split equally among its symbols.
    """
    s = sector_of.shape[0]
    member = sector_of[None, :] == jnp.arange(s)[:, None]  # bool[sector, S]; sectors <= symbols
    size = member.sum(1)
    score = (member * sentiment.sum(0)[None, :]).sum(1) / jnp.maximum(size, 1)  # f64[sector]
    logits = jnp.where(size[None, :] > 0, score[None, :] / temperature[:, None], -jnp.inf)
    per_sector = jax.nn.softmax(logits, axis=1)  # [M, sector]
    return per_sector[:, sector_of] / size[sector_of][None, :]


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[OrderBatch, State]:
    """Returns 2 rows per agent (sell, buy) and the agents' re-armed timers."""
    del key  # deterministic given the market
    w = state.kinds[KIND].wake
    fired, reason, last = evaluate(w, world, state)
    n = kind.count
    rows = kind.start + jnp.arange(n)
    ref = frame.view.ref  # f64[S]
    pos = state.wallet.position[rows]  # i64[M, S]
    value = pos * ref[None, :]
    equity = state.wallet.cash[rows] + value.sum(1)
    weight = target_weights(state.fundamentals.sentiment, world.news.sector_of, p.temperature)
    gap = p.invest * equity[:, None] * weight - value  # units; > 0 underweight
    safe_ref = jnp.where(ref > 0, ref, jnp.inf)[None, :]
    gap_shares = jnp.trunc(gap / safe_ref).astype(jnp.int64)  # toward zero: never past target
    sell_sym = jnp.argmin(gap, axis=1).astype(jnp.int32)
    buy_sym = jnp.argmax(gap, axis=1).astype(jnp.int32)
    pick = jnp.arange(n)
    sell_qty = jnp.minimum(jnp.maximum(-gap_shares[pick, sell_sym], 0), p.size)
    buy_qty = jnp.minimum(jnp.maximum(gap_shares[pick, buy_sym], 0), p.size)
    held_buy = pos[pick, buy_sym]

    def leg(sym, want, max_position):
        t = Trade(symbol=sym, size=p.size, max_position=max_position, collar=p.collar)
        return react_rows(static, kind, world, t, state, frame, jnp.where(fired, want, 0))

    sell = leg(sell_sym, -sell_qty, pos[pick, sell_sym])
    buy = leg(buy_sym, buy_qty, held_buy + buy_qty)
    orders = jax.tree.map(lambda a, b: jnp.stack([a, b], axis=1).reshape(-1), sell, buy)
    w = rearm(w, fired, state.tick)
    return orders, State(wake=observe(w, fired, reason, state.tick, last))
