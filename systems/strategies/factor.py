"""Factor long-short traders: rank every symbol on value, momentum and volatility; long the
top, short the bottom, flat the rest.

Score. Over the last ``lookback`` closes ``c[s, 0..L-1]`` of each symbol (oldest first,
from the indicator close window) and the read phase's view, three raw factors per symbol:

* value ``v[s] = fair[s] / ref[s]`` (fair value over the reference price; > 1 is cheap);
* momentum ``m[s] = log(c[s, L-1] / c[s, 0])`` (the log return over the window);
* volatility ``sigma[s]``: the population standard deviation (ddof 0) of the ``L - 1``
  log returns ``log(c[s, j+1] / c[s, j])`` of the window.

Each factor is turned into a cross-sectional z-score across the symbols,
``z[s] = (x[s] - mean(x)) / std(x)`` (population std; a factor whose std is 0 has z = 0
everywhere, it tells the symbols apart in nothing). The score is::

    score[s] = value_weight * z_v[s] + momentum_weight * z_m[s] - volatility_weight * z_sigma[s]

so volatility enters with a minus sign: a positive ``volatility_weight`` ranks calm symbols
high (the low-volatility anomaly). Symbols are ranked by score, highest first; ties go to
the lower symbol row (a stable sort). The ``top`` best are long, the ``bottom`` worst are
short, the rest are flat (``top + bottom <= n_symbols``, so the two never overlap).
The score and ranks are the same for every agent of the kind (the weights and the
lookback are the kind's); agents differ in size, position limit and rebalance phase.
Nothing trades until the window holds ``lookback`` bars with every close, fair value and
reference price positive.

Targets. ``max_position`` is a value in currency per symbol (each agent draws one): a
long target is ``+floor(max_position / ref[s])`` shares, a short one the same negated,
a flat one 0. Equal value per leg makes the book value-neutral when ``top == bottom``.
Shorts are further bounded by ``max_short`` shares per symbol and the borrow pool, as
for anyone (validation refuses a short sale the pool cannot cover).

Rebalance. Agent ``i`` of ``count`` has the phase ``floor(i * rebalance / count)`` and
trades only on ticks ``t`` with ``t % rebalance == phase``, so the kind's rebalances are
spread evenly over the interval rather than all landing on one tick. On its tick an agent
sends, per symbol, one immediate-or-cancel order toward that symbol's target, priced
``collar`` through the reference and snapped to the symbol's tick grid (up for buys, down
for sells): ``min(|target - position|, size)`` shares, capped for sells by the shares
held plus the short room ``max_short`` and for buys by cash, which is handed to the
tick's buys in rank order (best-ranked symbol first) so their total never exceeds the
agent's cash. What does not fill is dropped; the next rebalance tries again. The kind
sends only IOC orders, so it never has a resting order to cancel: its batch is exactly
one row per symbol per agent, row ``i * S + s`` for agent ``i`` and symbol ``s``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.frame import Frame
from components.indicators import IndicatorSpec
from components.money import floor_div, to_fixed
from components.orders import OrderBatch
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._rows import available_cash, collar_price, ioc_per_symbol
from systems.strategies._signal import draw_int

KIND = "factor_long_short"
TIER = 1
ROWS_PER_AGENT = 1  # per symbol; the world builder uses rows_per_agent


@dataclasses.dataclass
class Config:
    count: int = setting(0)
    size: list[int] = setting([10, 50], lo=1, doc=(
        "Range of per-order sizes in shares (each agent draws one): the most it trades per symbol and"
        " rebalance."))
    max_position: list[float] = setting([10_000.0, 30_000.0], doc=(
        "Range of the target value per symbol, long or short, in currency (each agent draws one); "
        "converted to shares at the reference price on each rebalance."))
    collar: float = setting(0.02, hi=0.5, doc="How far through the reference an order may reach (fraction).")
    cash: float = setting(100_000.0, doc="Starting cash per agent, in currency.")
    shares: int = setting(0, doc="Starting shares per agent in every symbol.")
    max_short: int = setting(500, doc="Largest short per symbol, in shares.")
    lookback: int = setting(50, lo=3, doc="Closes in the momentum and volatility window (bars).")
    value_weight: float = setting(1.0, lo=None, doc=(
        "Weight of the value z-score (fair value / price; cheap ranks high)."))
    momentum_weight: float = setting(1.0, lo=None, doc=(
        "Weight of the momentum z-score (log return over the lookback; rising ranks high)."))
    volatility_weight: float = setting(1.0, lo=None, doc=(
        "Weight of the volatility z-score, subtracted: a positive weight ranks calm symbols high."))
    top: int = setting(3, doc="Symbols held long (the best-ranked).")
    bottom: int = setting(3, doc="Symbols held short (the worst-ranked).")
    rebalance: int = setting(10, lo=1, doc=(
        "Ticks between an agent's rebalances; agents are staggered over the interval."))


WEIGHTS = ("value_weight", "momentum_weight", "volatility_weight")


@struct.dataclass
class Params:
    size: jax.Array  # i64[M] shares per order
    max_position: jax.Array  # i64[M] target value per symbol, units
    collar: jax.Array  # f64[M] fraction of the reference price
    phase: jax.Array  # i64[M] the agent rebalances on ticks t with t % rebalance == phase
    weights: jax.Array  # f64[3] value, momentum, volatility (volatility subtracted)
    top: jax.Array  # i64[] symbols long
    bottom: jax.Array  # i64[] symbols short
    rebalance: jax.Array  # i64[] ticks between an agent's rebalances
    lookback: int = struct.field(pytree_node=False, default=50)  # static: a window length


def rows_per_agent(cfg: Config, n_symbols: int) -> int:
    """One IOC row per symbol."""
    return n_symbols


def check(cfg: Config, n_symbols: int) -> None:
    """``top`` and ``bottom`` fit in the market without overlapping; finite weights, not
    all zero."""
    if cfg.top + cfg.bottom > n_symbols:
        raise ValueError(
            f"population.{KIND}.bottom: top + bottom must be <= the number of symbols "
            f"({n_symbols}) so the long and short sets do not overlap, got {cfg.top} + {cfg.bottom}"
        )
    if cfg.top + cfg.bottom < 1:
        raise ValueError(f"population.{KIND}.top: top + bottom must be >= 1, got {cfg.top} + {cfg.bottom}")
    for key in WEIGHTS:
        if not math.isfinite(getattr(cfg, key)):
            raise ValueError(f"population.{KIND}.{key}: must be finite, got {getattr(cfg, key)}")
    if all(getattr(cfg, key) == 0 for key in WEIGHTS):
        raise ValueError(f"population.{KIND}.value_weight: at least one factor weight must be non-zero")


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each agent's size and value limit; phases spread evenly over the interval."""
    check(cfg, n_symbols)
    rebalance = int(cfg.rebalance)
    return Params(
        size=jnp.asarray(draw_int(rng, cfg.size, count)),
        max_position=jnp.asarray(to_fixed(rng.uniform(*cfg.max_position, count)), jnp.int64),
        collar=jnp.full(count, cfg.collar, jnp.float64),
        phase=jnp.asarray(np.arange(count) * rebalance // max(count, 1), jnp.int64),
        weights=jnp.asarray([getattr(cfg, k) for k in WEIGHTS], jnp.float64),
        top=jnp.asarray(cfg.top, jnp.int64),
        bottom=jnp.asarray(cfg.bottom, jnp.int64),
        rebalance=jnp.asarray(rebalance, jnp.int64),
        lookback=int(cfg.lookback),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and ``shares`` of every symbol i64[M, S] (none by default)."""
    count = params.size.shape[0]
    return (np.full(count, to_fixed(cfg.cash), np.int64), np.full((count, n_symbols), int(cfg.shares), np.int64))


def indicators(cfg: Config) -> IndicatorSpec:
    """An SMA of the lookback, so the close window keeps ``lookback`` bars."""
    return IndicatorSpec(sma=(int(cfg.lookback),))


def closes(static: WorldStatic, state: WorldState, lookback: int) -> tuple[jax.Array, jax.Array]:
    """The last ``lookback`` closes per symbol, oldest first, f64[S, L] (the window's
    currency units), and whether the window holds that many bars. bool[]"""
    ind = state.indicators
    cols = (ind.bars - lookback + jnp.arange(lookback)) % static.indicators.window
    return ind.window[:, cols], ind.bars >= lookback


def factors(close: jax.Array, fair: jax.Array, ref: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Raw factors f64[3, S] (value, momentum, volatility) from closes f64[S, L] (oldest
    first), fair value and reference price f64[S] (units), and whether every input is
    usable (positive and finite). bool[]"""
    ok = (close > 0).all() & (fair > 0).all() & (ref > 0).all() & jnp.isfinite(fair).all()
    logc = jnp.log(jnp.where(close > 0, close, 1.0))
    value = fair / jnp.where(ref > 0, ref, 1.0)
    momentum = logc[:, -1] - logc[:, 0]
    volatility = jnp.diff(logc, axis=1).std(axis=1)
    return jnp.stack([value, momentum, volatility]), ok


def zscore(x: jax.Array) -> jax.Array:
    """Cross-sectional z-score along the last (symbol) axis, population std; 0 where the
    std is 0. f64[..., S]"""
    std = x.std(axis=-1, keepdims=True)
    return jnp.where(std > 0, (x - x.mean(axis=-1, keepdims=True)) / jnp.where(std > 0, std, 1.0), 0.0)


def combine(z: jax.Array, weights: jax.Array) -> jax.Array:
    """The score f64[S] from z-scores f64[3, S]: value and momentum added, volatility
    subtracted, each times its weight."""
    return weights[0] * z[0] + weights[1] * z[1] - weights[2] * z[2]


def ranks(score: jax.Array) -> jax.Array:
    """Rank of each symbol, 0 = highest score; ties go to the lower row. i64[S]"""
    order = jnp.argsort(-score, stable=True)
    return jnp.zeros(score.shape[0], jnp.int64).at[order].set(jnp.arange(score.shape[0]))


def sides(rank: jax.Array, top: jax.Array, bottom: jax.Array) -> jax.Array:
    """+1 for the ``top`` best ranks (long), -1 for the ``bottom`` worst (short), else 0. i64[S]"""
    n = rank.shape[0]
    return jnp.where(rank < top, 1, jnp.where(rank >= n - bottom, -1, 0)).astype(jnp.int64)


def score(static: WorldStatic, p: Params, state: WorldState, view) -> tuple[jax.Array, jax.Array]:
    """The kind's score f64[S] on this tick's inputs, and whether it is defined. bool[]"""
    close, full = closes(static, state, p.lookback)
    raw, ok = factors(close, view.fair, view.ref)
    return combine(zscore(raw), p.weights), full & ok


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> OrderBatch:
    """Returns ``count * n_symbols`` rows: per agent, one IOC per symbol (symbol order)."""
    del key  # deterministic given the market
    rows = kind.start + jnp.arange(kind.count)
    view = frame.view
    sc, ready = score(static, p, state, view)
    rank = ranks(sc)
    ref = jnp.where(view.ref > 0, view.ref, 1.0)
    target = sides(rank, p.top, p.bottom)[None, :] * jnp.floor(p.max_position[:, None] / ref[None, :]).astype(jnp.int64)
    pos = state.wallet.position[rows]  # [n, S]
    on = ready & (state.tick % p.rebalance == p.phase)  # [n]
    want = jnp.where(on[:, None], target - pos, 0)
    buy = want > 0
    price = collar_price(buy, ref[None, :], p.collar[:, None], world.tick_size[None, :])  # [n, S]
    qty = jnp.minimum(jnp.abs(want), p.size[:, None])
    # Sells: shares held plus the short room (the kind never rests an order, so nothing is
    # reserved). Buys: cash, spent on the best-ranked symbols first.
    sell_cap = jnp.maximum(pos + world.max_short[rows][:, None], 0)
    spend = jnp.where(buy, qty * price, 0)
    by_rank = jnp.argsort(rank)  # symbols, best first
    spent_r = jnp.cumsum(spend[:, by_rank], axis=1) - spend[:, by_rank]
    before = spent_r[:, rank]  # cash the better-ranked buys take first
    left = jnp.maximum(available_cash(state, rows)[:, None] - before, 0)
    buy_cap = floor_div(left, price)
    qty = jnp.maximum(jnp.minimum(qty, jnp.where(buy, buy_cap, sell_cap)), 0).astype(jnp.int64)
    return ioc_per_symbol(static.n_agents, state.tick, rows, (want != 0) & (qty > 0), buy, price, qty)
