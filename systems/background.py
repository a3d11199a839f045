"""The tier 3 background pool: the market's anonymous majority, without rows.

The pool stands for ``members`` traders who are never laid out as agents. Each tick a
statistical generator draws its orders per symbol, and its fills are accounted in
aggregate: one cash balance, one position per symbol, volumes and values bought and sold.

Per symbol ``s`` and tick:

* **count** ~ Poisson(``members / S * activity * boost_s``), capped at ``cap`` (the
  static row capacity, ``lambda_max + 6 sqrt(lambda_max)``, so the cap almost never
  binds), where ``boost_s = clip((ATR(short) / ATR(long)) ** vol_feedback, *boost)``
  rises with realised volatility (1 until both ATRs are ready);
* **side**: buy with probability ``0.5 + 0.5 * max_bias * tanh(gain * mood_s) * (1 -
  2 * contrarian)``: a fraction ``contrarian`` of the pool leans against the mood. The
  mood follows news: each tick it takes the change of the symbol's total sentiment (market
  and sector news, ``FundamentalsState.sentiment``) and decays toward neutral by
  ``0.5 ** (1 / half_life)``;
* **size**: log-normal, ``round(exp(N(log(size_median), size_sigma)))``, in [1, size_cap];
* **price**: an offset ``min(offset_mean * Exp(1), offset_cap)`` from the reference
  (mid) price. With probability ``aggressive`` the order reaches through the mid by the
  offset (it takes liquidity); otherwise it waits behind it. Buys are rounded down to the
  tick, sells up.

Every order is a LIMIT order. What still rests ``lifetime`` ticks later is cancelled by the
pool (a ring of its resting ids, refreshed from the engine's order updates).

Ids and owners: pool order ids start at ``BACKGROUND_ID`` (far above any agent's id), and
each order's owner is a virtual agent ``n_agents + (tick % (lifetime + 1)) * R + r`` for
row ``r`` of ``R``, so two live pool orders never share an owner: self-trade prevention
never fires inside the pool, and no agent's wallet or order slot is touched.

Sanity: ``check_runaway`` fails loudly once the pool's cash or any position leaves
``[1 - max_drift, 1 + max_drift]`` times its opening value (a pool drifting into a
one-sided bias would otherwise silently drain or flood the book).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from components.agents import NO_ORDER
from components.background import (
    BACKGROUND_ID,
    BackgroundParams,
    BackgroundState,
    BackgroundStatic,
)
from components.frame import Frame
from components.money import to_fixed
from components.orders import OrderBatch, OrderType, Side
from systems.fusion import materialised
from systems.match import FILL_FIELDS, UPDATE_FIELDS
from systems.rng import hashed_bits
from systems.ticks import ceil_tick, floor_tick

REGIMES: dict[str, dict[str, float]] = {
    # activity: probability a member sends an order per tick; aggressive: fraction of
    # orders through the mid; offset_mean: mean distance from the mid (fraction);
    # size_sigma: log-normal spread of sizes.
    "calm": {"activity": 0.005, "aggressive": 0.25, "offset_mean": 0.0010, "size_sigma": 0.6},
    "normal": {"activity": 0.010, "aggressive": 0.35, "offset_mean": 0.0015, "size_sigma": 0.8},
    "volatile": {"activity": 0.020, "aggressive": 0.45, "offset_mean": 0.0030, "size_sigma": 1.0},
    "crisis": {"activity": 0.040, "aggressive": 0.60, "offset_mean": 0.0060, "size_sigma": 1.2},
}
"""Regime presets: the values a pool uses for every field its config leaves unset."""

_F = {name: i for i, name in enumerate(FILL_FIELDS)}
_U = {name: i for i, name in enumerate(UPDATE_FIELDS)}


def resolved(cfg) -> dict[str, float]:
    """The regime preset with the config's explicit values on top."""
    out = dict(REGIMES[cfg.regime])
    for key in out:
        if getattr(cfg, key) is not None:
            out[key] = float(getattr(cfg, key))
    return out


def capacity(members: int, n_symbols: int, activity: float, boost_hi: float) -> int:
    """Order rows per symbol: the expected count at the largest boost plus six standard
    deviations (a Poisson draw exceeds it with probability < 1e-8)."""
    lam = members / n_symbols * activity * boost_hi
    return max(4, int(math.ceil(lam + 6.0 * math.sqrt(lam) + 1)))


def make_background(cfg, n_agents: int, n_symbols: int, batch_start: int):
    """(BackgroundStatic, BackgroundParams, BackgroundState) for a pool config entry."""
    r = resolved(cfg)
    boost = (float(cfg.boost[0]), float(cfg.boost[1])) if cfg.vol_feedback > 0 else (1.0, 1.0)
    cap = capacity(cfg.count, n_symbols, r["activity"], boost[1])
    static = BackgroundStatic(
        members=cfg.count, n_symbols=n_symbols, cap=cap, lifetime=cfg.lifetime,
        agent_base=n_agents, batch_start=batch_start,
        vol_periods=tuple(int(p) for p in cfg.vol_periods) if cfg.vol_feedback > 0 else (),
    )
    f64 = lambda v: jnp.asarray(v, jnp.float64)  # noqa: E731
    params = BackgroundParams(
        rate=f64(cfg.count / n_symbols * r["activity"]),
        aggressive=f64(r["aggressive"]),
        offset_mean=f64(r["offset_mean"]),
        offset_cap=f64(cfg.offset_cap),
        size_mu=f64(math.log(cfg.size_median)),
        size_sigma=f64(r["size_sigma"]),
        size_cap=jnp.asarray(cfg.size_cap, jnp.int64),
        vol_feedback=f64(cfg.vol_feedback),
        boost_lo=f64(boost[0]),
        boost_hi=f64(boost[1]),
        gain=f64(cfg.gain),
        max_bias=f64(cfg.max_bias),
        contrarian=f64(cfg.contrarian),
        decay=f64(0.5 ** (1.0 / cfg.half_life)),
        max_drift=f64(cfg.max_drift),
    )
    cash = np.int64(to_fixed(cfg.cash) * cfg.count)
    position = np.full(n_symbols, cfg.count * cfg.shares // n_symbols, np.int64)
    zeros = jnp.zeros(n_symbols, jnp.int64)
    state = BackgroundState(
        resting=jnp.full((cfg.lifetime, static.rows), NO_ORDER, jnp.int64),
        cash=jnp.asarray(cash), position=jnp.asarray(position),
        opening_cash=jnp.asarray(cash), opening_position=jnp.asarray(position),
        bought=zeros, sold=zeros, buy_value=zeros, sell_value=zeros,
        sent=jnp.zeros(2, jnp.int64),
        mood=jnp.zeros(n_symbols, jnp.float64), seen=jnp.zeros(n_symbols, jnp.float64),
    )
    return static, params, state


# ---------------------------------------------------------------------------------------
# Read phase: the generator


def boost(bs: BackgroundStatic, p: BackgroundParams, frame: Frame) -> jax.Array:
    """Activity multiplier per symbol from realised volatility. f64[S]"""
    if not bs.vol_periods:
        return jnp.ones(bs.n_symbols)
    ratio = frame.indicators.atr_ratio(*bs.vol_periods)
    return jnp.clip(ratio**p.vol_feedback, p.boost_lo, p.boost_hi)


def buy_probability(p: BackgroundParams, mood: jax.Array) -> jax.Array:
    """P(buy) per symbol from the pool's mood. f64[S]"""
    return 0.5 + 0.5 * p.max_bias * jnp.tanh(p.gain * mood) * (1.0 - 2.0 * p.contrarian)


def background_orders(static, params, state, frame: Frame, key: jax.Array) -> OrderBatch:
    """The pool's rows of the tick: ``R`` new orders, then ``R`` cancels of the orders
    sent ``lifetime`` ticks ago that still rest. OrderBatch [2R]."""
    bs: BackgroundStatic = static.background
    p: BackgroundParams = params.background
    st: BackgroundState = state.background
    s, cap, R = bs.n_symbols, bs.cap, bs.rows
    k_count, k_bits = jax.random.split(key)
    lam = p.rate * boost(bs, p, frame)
    count = jnp.minimum(jax.random.poisson(k_count, lam, (s,)), cap)  # [S]
    valid = (jnp.arange(cap)[None, :] < count[:, None]).reshape(-1)  # symbol-major rows
    sym = jnp.repeat(jnp.arange(s, dtype=jnp.int32), cap)

    # One draw of five 32-bit words per row (systems.rng), turned into uniforms on (0, 1):
    # far cheaper on a CPU than separate normal and exponential draws.
    u = ((hashed_bits(k_bits, (5, R)) >> 8).astype(jnp.float64) + 0.5) * 2.0**-24
    buy = u[0] < materialised(buy_probability(p, st.mood))[sym]  # one tanh per symbol, not per row
    aggressive = u[1] < p.aggressive
    normal = jnp.sqrt(-2.0 * jnp.log(u[2])) * jnp.cos(2.0 * jnp.pi * u[3])  # Box-Muller
    size = jnp.round(jnp.exp(p.size_mu + p.size_sigma * normal))
    qty = jnp.clip(size.astype(jnp.int64), 1, p.size_cap)
    offset = jnp.minimum(p.offset_mean * -jnp.log(u[4]), p.offset_cap)
    ref = frame.view.ref[sym]
    tick = params.tick_size[sym]
    up = buy == aggressive  # buys through the mid and passive sells sit above it
    raw = ref * jnp.where(up, 1.0 + offset, 1.0 - offset)
    price = jnp.where(buy, floor_tick(raw, tick), ceil_tick(raw, tick))

    now = state.tick
    r = jnp.arange(R, dtype=jnp.int64)
    ring = bs.lifetime + 1
    owner = lambda t: (bs.agent_base + (t % ring) * R + r).astype(jnp.int32)  # noqa: E731
    new = OrderBatch(
        valid=valid,
        id=BACKGROUND_ID + now * R + r,
        agent=owner(now),
        symbol=sym,
        side=jnp.where(buy, Side.BUY, Side.SELL).astype(jnp.int8),
        kind=jnp.full(R, OrderType.LIMIT, jnp.int8),
        price=price,
        qty=qty,
    )
    old = st.resting[now % bs.lifetime]
    cancel = OrderBatch(
        valid=old != NO_ORDER,
        id=old,
        agent=owner(now - bs.lifetime),
        symbol=sym,
        side=jnp.zeros(R, jnp.int8),
        kind=jnp.full(R, OrderType.CANCEL, jnp.int8),
        price=jnp.zeros(R, jnp.int64),
        qty=jnp.zeros(R, jnp.int64),
    )
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), new, cancel)


# ---------------------------------------------------------------------------------------
# Write phase: aggregate accounting


def settle_background(static, params, state, frame: Frame, key: jax.Array):
    """Account the pool's fills in aggregate, refresh its ring of resting orders, count
    what it sent, and move its mood with the tick's news. A write-phase stage that runs
    after ``fundamentals`` (so the mood absorbs this tick's news). Writes state."""
    del key
    bs: BackgroundStatic = static.background
    if bs is None:
        return state, frame
    p: BackgroundParams = params.background
    st: BackgroundState = state.background
    s, base = bs.n_symbols, bs.agent_base

    f = frame.fills
    taker, maker = f[_F["taker_agent"]], f[_F["maker_agent"]]
    taker_buys = f[_F["side"]] == Side.BUY
    buyer = jnp.where(taker_buys, taker, maker)
    seller = jnp.where(taker_buys, maker, taker)
    qty = f[_F["qty"]]
    value = f[_F["price"]] * qty
    # The pool's side of each fill, summed per symbol by one scatter-add of [F, 4] rows.
    # Four masked one-hot sums over [F, S] took 2.6 ms a tick at a million agents (0.2 at
    # seed_100k); the tick is 2.5 (0.13) ms shorter this way. Integer sums: exact in any order.
    pool_buys, pool_sells = buyer >= base, seller >= base
    contrib = jnp.stack(
        [jnp.where(pool_buys, qty, 0), jnp.where(pool_sells, qty, 0),
         jnp.where(pool_buys, value, 0), jnp.where(pool_sells, value, 0)],
        axis=1,
    )
    per_symbol = jnp.zeros((s, 4), jnp.int64).at[f[_F["symbol"]]].add(contrib, mode="drop")
    bought, sold, paid, got = (per_symbol[:, i] for i in range(4))

    # The ring: the slot of the orders sent `lifetime` ticks ago was cancelled this tick;
    # every update of a pool order sets (rests) or clears its cell.
    R = bs.rows
    resting = st.resting.at[state.tick % bs.lifetime].set(NO_ORDER)
    u = frame.updates
    uid, rem = u[_U["id"]], u[_U["remaining"]]
    rel = jnp.where(uid >= BACKGROUND_ID, uid - BACKGROUND_ID, 0)
    sent_at, row = rel // R, rel % R
    # One update per order per tick; those of the orders cancelled above share their
    # cells with this tick's new orders, and are already cleared.
    mine = (uid >= BACKGROUND_ID) & (sent_at > state.tick - bs.lifetime)
    cell = jnp.where(mine, (sent_at % bs.lifetime) * R + row, bs.lifetime * R)  # out of range: dropped
    resting = resting.reshape(-1).at[cell].set(jnp.where(rem > 0, uid, NO_ORDER), mode="drop")

    o = frame.orders
    new = slice(bs.batch_start, bs.batch_start + R)
    sent_buys = (o.valid[new] & (o.side[new] == Side.BUY)).sum()
    sent_sells = (o.valid[new] & (o.side[new] == Side.SELL)).sum()

    total = state.fundamentals.sentiment.sum(axis=0)
    mood = st.mood * p.decay + (total - st.seen)
    new_state = st.replace(
        resting=resting.reshape(st.resting.shape),
        cash=st.cash + got.sum() - paid.sum(),
        position=st.position + bought - sold,
        bought=st.bought + bought, sold=st.sold + sold,
        buy_value=st.buy_value + paid, sell_value=st.sell_value + got,
        sent=st.sent + jnp.stack([sent_buys, sent_sells]).astype(jnp.int64),
        mood=mood, seen=total,
    )
    return state.replace(background=new_state), frame


def check_runaway(state: BackgroundState, max_drift: float, symbols) -> str | None:
    """A one-line description of the first runaway bias, or None. Fetches only the
    account's cash and positions to the host (it runs every tick: one vectorised test,
    the message only on failure)."""
    cash, c0 = np.asarray(state.cash), np.asarray(state.opening_cash)
    pos, p0 = np.asarray(state.position), np.asarray(state.opening_position)
    lo, hi = 1.0 - max_drift, 1.0 + max_drift
    pos_ok = (lo * p0 <= pos) & (pos <= hi * p0)
    cash_ok = bool((lo * c0 <= cash) & (cash <= hi * c0))
    if cash_ok and pos_ok.all():
        return None
    cash, c0 = int(cash), int(c0)
    if not cash_ok:
        return (f"background pool cash drifted to {cash / c0:.0%} of its opening {c0 / 1e4:,.0f} "
                f"(bound {lo:.0%}-{hi:.0%})")
    i = int(np.flatnonzero(~pos_ok)[0])
    return (f"background pool position in {symbols[i]} drifted to {int(pos[i]):,} shares from {int(p0[i]):,} "
            f"(bound {lo:.0%}-{hi:.0%})")
