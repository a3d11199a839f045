"""fundamentals: news events -> fundamentals and sentiment -> fair value per symbol.

Fair value is the Gordon growth model (``gordon_fair_value``) times one plus the symbol's
total sentiment. News arrives at random (per kind: a probability per tick once a minimum
interval has passed since the last random event of that kind) or on a schedule from the
config, and moves fundamentals and sentiment:

=========  ==========================  ==============================================
kind       target                      effect of an event of size ``x``
=========  ==========================  ==============================================
earnings   one symbol                  ``eps *= 1 + x``
guidance   one symbol                  ``growth += x``
rate       all symbols                 ``rate += x`` (floored at 0)
sector     one sector's symbols        none on fundamentals
=========  ==========================  ==============================================

Every event also adds ``news.sentiment[kind] * x`` to its kind's sentiment row on the
symbols it affects; sentiment decays by ``news.decay[kind] = exp(-1 / duration)`` per tick.

Between events the fundamentals move on their own: each tick, before the news, every
symbol's EPS takes a step of a random walk in logs (a jump diffusion, Merton 1976):
``log eps += drift + volatility * z + J``, with ``z ~ N(0, 1)`` and ``J ~ N(0, jump_std**2)``
with probability ``jump_rate`` (else 0), drawn per symbol. Fair value is proportional to EPS
(within the P/E bounds, which scale with it), so its log follows the same walk: it is never
flat, and the news events come on top of it. The stage records the log change of fair
value that the tick's events made (against the same tick without them) as ``news_move``:
what every trader learns at once. The walk, and the sentiment's slow decay, are the
market's to discover.

The stage ``update_fundamentals`` reads exactly:

* ``params.news``: a ``NewsParams``;
* ``state.fundamentals``: a ``FundamentalsState`` (the only field it writes);
* ``state.tick``: the index of the current tick. The stage must run in the write segment
  **before** ``measure`` (which advances ``state.tick``), e.g. right after ``settle``, so
  that an event scheduled at tick ``T`` fires in the tick whose index is ``T`` and its
  effect is seen by decisions from tick ``T + 1`` on;
* ``static`` is not read.

It fills ``frame.events`` (see ``components.fundamentals.EVENT_FIELDS``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from components.frame import Frame
from components.fundamentals import (
    EARNINGS,
    EVENT_FIELDS,
    EVENT_KINDS,
    GUIDANCE,
    RATE,
    SECTOR,
    SENTIMENT_BOUNDS,
    FundamentalsState,
    NewsParams,
)
from components.money import SCALE

N_KINDS = len(EVENT_KINDS)


# ---------------------------------------------------------------------------------------
# Valuation


def gordon_fair_value(eps, growth, payout, rate, erp, min_spread, pe_lo, pe_hi):
    """Gordon growth fair value per share, in currency. Vectorised (broadcasts).

    ``D1 = eps * payout * (1 + growth)`` is next year's dividend and ``k = rate + erp`` the
    discount rate. The value ``D1 / (k - growth)`` is only defined for ``k > growth``; the
    guarded fallback uses ``spread = max(k - growth, min_spread)``, so when ``k <= growth``
    (or ``k`` only just above it) the value is ``D1 / min_spread``. The result is then
    kept within the P/E bounds ``[pe_lo * max(eps, 0), pe_hi * max(eps, 0)]``, so a symbol
    with ``eps <= 0`` is worth 0 here (the stage floors fair value at one tick).

    Example: eps 5, payout 0.5, growth 0.03, rate 0.04, erp 0.05:
    ``D1 = 2.575``, ``spread = 0.06``, value ``42.9166...`` (P/E 8.58, inside [2, 60]).
    """
    d1 = eps * payout * (1.0 + growth)
    spread = jnp.maximum(rate + erp - growth, min_spread)
    value = d1 / spread
    earnings = jnp.maximum(eps, 0.0)
    return jnp.clip(value, pe_lo * earnings, pe_hi * earnings)


def calibrated_eps(price, growth, payout, rate, erp, min_spread):
    """The EPS (currency) whose unclipped Gordon value equals ``price`` (currency):
    ``price * spread / (payout * (1 + growth))``. Needs ``payout > 0`` and ``growth > -1``."""
    spread = jnp.maximum(rate + erp - growth, min_spread)
    return price * spread / (payout * (1.0 + growth))


def fair_value(f: FundamentalsState, news: NewsParams) -> jax.Array:
    """Fair value in units: Gordon value * SCALE * (1 + total sentiment clipped to
    ``SENTIMENT_BOUNDS``), at least one tick. f64[S]"""
    gordon = gordon_fair_value(f.eps, f.growth, f.payout, f.rate, f.erp,
                               news.min_spread, news.pe_lo, news.pe_hi)
    mood = jnp.clip(f.sentiment.sum(axis=0), *SENTIMENT_BOUNDS)
    return jnp.maximum(gordon * SCALE * (1.0 + mood), news.tick_size)


# ---------------------------------------------------------------------------------------
# The stage


def update_fundamentals(static, params, state, frame: Frame, key: jax.Array):
    """update: decay sentiment, draw random news, apply random and scheduled news, and
    recompute fair value; fill ``frame.events`` f64[6, 4 + E]. A write-phase stage;
    see the module docstring for what it reads and where it must run."""
    del static
    news: NewsParams = params.news
    f: FundamentalsState = state.fundamentals
    now = jnp.asarray(state.tick, jnp.int64)
    s = f.eps.shape[0]
    k_arrive, k_target, k_size = jax.random.split(key, 3)
    walk = eps_walk(news, jax.random.fold_in(key, 1), s)

    # (b) Random arrivals: at most one per kind per tick.
    eligible = now - f.last_event >= news.min_interval
    fired = eligible & (jax.random.uniform(k_arrive, (N_KINDS,), jnp.float64) < news.rate)
    n_sectors = jnp.max(news.sector_of) + 1
    choices = jnp.array([s, s, 1, 1], jnp.int64).at[SECTOR].set(n_sectors)
    pick = jnp.floor(jax.random.uniform(k_target, (N_KINDS,), jnp.float64) * choices).astype(jnp.int32)
    pick = jnp.minimum(pick, choices.astype(jnp.int32) - 1)
    r_target = pick.at[RATE].set(-1)
    r_size = news.mean + news.std * jax.random.normal(k_size, (N_KINDS,), jnp.float64)
    last_event = jnp.where(fired, now, f.last_event)

    # (c) Every slot of the tick: the 4 random kinds, then the scheduled events.
    valid = jnp.concatenate([fired, news.tick == now])
    kind = jnp.concatenate([jnp.arange(N_KINDS, dtype=jnp.int32), news.kind.astype(jnp.int32)])
    target = jnp.concatenate([r_target, news.target.astype(jnp.int32)])
    size = jnp.concatenate([r_size, news.size.astype(jnp.float64)])
    size = jnp.where(valid, size, 0.0)
    affected = valid[:, None] & _affected(kind, target, news.sector_of, s)  # bool[4+E, S]

    # (d) Effects. Several events in one tick compose: EPS factors multiply, growth and
    # rate changes add (the rate is floored at 0 after the sum).
    is_kind = kind[:, None] == jnp.arange(N_KINDS)[None, :]  # bool[4+E, 4]
    earn = affected & is_kind[:, EARNINGS, None]
    eps = f.eps * walk * jnp.prod(jnp.where(earn, 1.0 + size[:, None], 1.0), axis=0)
    guide = affected & is_kind[:, GUIDANCE, None]
    growth = f.growth + jnp.sum(jnp.where(guide, size[:, None], 0.0), axis=0)
    rate = jnp.maximum(f.rate + jnp.sum(jnp.where(valid & is_kind[:, RATE], size, 0.0)), 0.0)
    # (a) decay, then this tick's impulses.
    impulse = jnp.where(affected, (news.sentiment[kind] * size)[:, None], 0.0)  # f64[4+E, S]
    sentiment = f.sentiment * news.decay[:, None] + is_kind.astype(jnp.float64).T @ impulse

    # (e) Fair value.
    # Which symbols each kind touched this tick (for tier 2 news subscriptions).
    touched = (is_kind[:, :, None] & affected[:, None, :]).any(axis=0)  # bool[4, S]
    news_tick = jnp.where(touched, now, f.news_tick)
    new = f.replace(eps=eps, growth=growth, rate=rate, sentiment=sentiment, last_event=last_event,
                    news_tick=news_tick)
    fair = fair_value(new, news)
    # The news of the tick: fair value against what it would be without this tick's events.
    quiet = fair_value(f.replace(eps=f.eps * walk, sentiment=f.sentiment * news.decay[:, None]), news)
    new = new.replace(fair=fair, news_move=jnp.log(fair / quiet))

    # (f) The record.
    count = jnp.maximum(affected.sum(axis=1), 1)
    before = (affected * f.fair[None, :]).sum(axis=1) / count
    after = (affected * new.fair[None, :]).sum(axis=1) / count
    record = {
        "valid": valid.astype(jnp.float64),
        "kind": kind.astype(jnp.float64),
        "target": target.astype(jnp.float64),
        "size": size,
        "fair_before": jnp.where(valid, before, 0.0),
        "fair_after": jnp.where(valid, after, 0.0),
    }
    events = jnp.stack([record[name] for name in EVENT_FIELDS])
    return state.replace(fundamentals=new), frame.replace(events=events)


def eps_walk(news: NewsParams, key: jax.Array, s: int) -> jax.Array:
    """One tick of the fundamentals' random walk: the factor ``exp(drift + volatility * z +
    J)`` that multiplies each symbol's EPS (see the module docstring). f64[S]"""
    k_z, k_jump, k_size = jax.random.split(key, 3)
    z = jax.random.normal(k_z, (s,), jnp.float64)
    jumps = jax.random.uniform(k_jump, (s,), jnp.float64) < news.jump_rate
    size = news.jump_std * jax.random.normal(k_size, (s,), jnp.float64)
    return jnp.exp(news.drift + news.volatility * z + jnp.where(jumps, size, 0.0))


def _affected(kind, target, sector_of, s: int) -> jax.Array:
    """Symbols each event slot touches. bool[len(kind), S]"""
    symbol = jnp.arange(s)[None, :] == target[:, None]
    sector = sector_of[None, :] == target[:, None]
    every = jnp.ones((kind.shape[0], s), bool)
    k = kind[:, None]
    return jnp.where(k == RATE, every, jnp.where(k == SECTOR, sector, symbol))
