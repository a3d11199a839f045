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

The stage ``update_fundamentals`` reads exactly:

* ``params.news``: a ``NewsParams``;
* ``state.fundamentals``: a ``FundamentalsState`` (the only field it writes);
* ``state.tick``: the index of the current tick. The stage must run in the write segment
  **before** ``measure`` (which advances ``state.tick``), e.g. right after ``settle``, so
  that an event scheduled at tick ``T`` fires in the tick whose index is ``T`` and its
  effect is seen by decisions from tick ``T + 1`` on;
* ``static`` is not read.

It adds ``frame["events"]`` (see ``components.fundamentals.EVENT_FIELDS``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from components.fundamentals import (
    EARNINGS,
    EVENT_FIELDS,
    EVENT_KINDS,
    GUIDANCE,
    NEVER,
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


def update_fundamentals(static, params, state, frame: dict, key: jax.Array):
    """update: decay sentiment, draw random news, apply random and scheduled news, and
    recompute fair value; add ``frame["events"]`` f64[6, 4 + E]. A write-phase stage;
    see the module docstring for what it reads and where it must run."""
    del static
    news: NewsParams = params.news
    f: FundamentalsState = state.fundamentals
    now = jnp.asarray(state.tick, jnp.int64)
    s = f.eps.shape[0]
    k_arrive, k_target, k_size = jax.random.split(key, 3)

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
    eps = f.eps * jnp.prod(jnp.where(earn, 1.0 + size[:, None], 1.0), axis=0)
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
    new = new.replace(fair=fair_value(new, news))

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
    frame["events"] = jnp.stack([record[name] for name in EVENT_FIELDS])
    return state.replace(fundamentals=new), frame


def _affected(kind, target, sector_of, s: int) -> jax.Array:
    """Symbols each event slot touches. bool[len(kind), S]"""
    symbol = jnp.arange(s)[None, :] == target[:, None]
    sector = sector_of[None, :] == target[:, None]
    every = jnp.ones((kind.shape[0], s), bool)
    k = kind[:, None]
    return jnp.where(k == RATE, every, jnp.where(k == SECTOR, sector, symbol))


# ---------------------------------------------------------------------------------------
# Construction from the config (host)


def _per_symbol(values: list, default: Any, n: int) -> np.ndarray:
    return np.asarray(values if values else [default] * n, np.float64)


def _opening_eps(cfg, n_symbols: int) -> np.ndarray:
    fc = cfg.fundamentals
    if fc.eps_each:
        return np.asarray(fc.eps_each, np.float64)
    price = cfg.market.opening_prices()[:n_symbols].astype(np.float64) / SCALE
    return np.asarray(calibrated_eps(
        price, _per_symbol(fc.growth_each, fc.growth, n_symbols),
        _per_symbol(fc.payout_each, fc.payout, n_symbols), fc.rate, fc.erp, fc.min_spread))


def _scheduled(cfg, symbols, sector_names) -> tuple[np.ndarray, ...]:
    """Scheduled events as arrays (tick i64, kind i32, target i32, size f64); ValueError
    ``news.scheduled[i].<field>: problem`` for an unknown kind or target or a bad value."""
    ticks, kinds, targets, sizes = [], [], [], []
    for i, ev in enumerate(cfg.news.scheduled):
        key = f"news.scheduled[{i}]"
        if ev.kind not in EVENT_KINDS:
            raise ValueError(f"{key}.kind: unknown kind '{ev.kind}'; allowed: {', '.join(EVENT_KINDS)}")
        if ev.tick < 0:
            raise ValueError(f"{key}.tick: must be >= 0, got {ev.tick}")
        if not math.isfinite(ev.size):
            raise ValueError(f"{key}.size: must be finite, got {ev.size}")
        if ev.kind == "earnings" and ev.size <= -1:
            raise ValueError(f"{key}.size: an earnings surprise must be > -1 (a fraction of EPS), got {ev.size}")
        kind = EVENT_KINDS.index(ev.kind)
        if kind == RATE:
            target = -1
        elif kind == SECTOR:
            if ev.target not in sector_names:
                raise ValueError(f"{key}.target: unknown sector '{ev.target}'; allowed: {', '.join(sector_names)}")
            target = list(sector_names).index(ev.target)
        else:
            if ev.target not in symbols:
                raise ValueError(f"{key}.target: unknown symbol '{ev.target}'; allowed: {', '.join(symbols)}")
            target = list(symbols).index(ev.target)
        ticks.append(ev.tick)
        kinds.append(kind)
        targets.append(target)
        sizes.append(ev.size)
    return (np.asarray(ticks, np.int64), np.asarray(kinds, np.int32),
            np.asarray(targets, np.int32), np.asarray(sizes, np.float64))


def check_config(cfg) -> None:
    """Check ``cfg.fundamentals`` and ``cfg.news`` against ``cfg.market`` (assumed valid);
    raise ValueError ``key: problem`` naming the first bad key."""
    fc, n = cfg.fundamentals, len(cfg.market.symbols)
    symbols = list(cfg.market.symbols)
    for name in ("growth_each", "payout_each", "eps_each"):
        values = getattr(fc, name)
        if values and len(values) != n:
            raise ValueError(f"fundamentals.{name}: needs one value per symbol ({n}), got {len(values)}")
    for name in ("rate", "erp"):
        if not math.isfinite(getattr(fc, name)):
            raise ValueError(f"fundamentals.{name}: must be finite, got {getattr(fc, name)}")
    if fc.rate < 0:
        raise ValueError(f"fundamentals.rate: must be >= 0, got {fc.rate}")
    key = "fundamentals.payout_each" if fc.payout_each else "fundamentals.payout"
    for p in fc.payout_each or [fc.payout]:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{key}: must be in [0, 1], got {fc.payout_each or fc.payout}")
    key = "fundamentals.growth_each" if fc.growth_each else "fundamentals.growth"
    for g in fc.growth_each or [fc.growth]:
        if not (math.isfinite(g) and g > -1.0):
            raise ValueError(f"{key}: must be finite and > -1, got {fc.growth_each or fc.growth}")
    if any(not math.isfinite(e) for e in fc.eps_each):
        raise ValueError(f"fundamentals.eps_each: must be finite, got {fc.eps_each}")
    if not (math.isfinite(fc.min_spread) and fc.min_spread > 0):
        raise ValueError(f"fundamentals.min_spread: must be > 0, got {fc.min_spread}")
    pe = list(fc.pe_bounds)
    if len(pe) != 2 or not all(math.isfinite(x) for x in pe) or not 0 < pe[0] <= pe[1]:
        raise ValueError(f"fundamentals.pe_bounds: must be [lo, hi] with 0 < lo <= hi, got {pe}")
    if not fc.eps_each:
        payout = _per_symbol(fc.payout_each, fc.payout, n)
        if (payout <= 0).any():
            key = "fundamentals.payout_each" if fc.payout_each else "fundamentals.payout"
            raise ValueError(f"{key}: must be > 0 to calibrate EPS from the opening prices "
                             f"(fundamentals.eps_each is empty), got {fc.payout_each or fc.payout}")
        growth = _per_symbol(fc.growth_each, fc.growth, n)
        spread = np.maximum(fc.rate + fc.erp - growth, fc.min_spread)
        pe_open = payout * (1.0 + growth) / spread  # price / calibrated EPS
        for name, x in zip(symbols, pe_open):
            if not pe[0] <= x <= pe[1]:
                raise ValueError(f"fundamentals.pe_bounds: {name}'s opening P/E is {x:.4g} (calibrated so that "
                                 f"fair value = initial price), outside {pe}; widen the bounds")
    for kind in EVENT_KINDS:
        k = getattr(cfg.news, kind)
        key = f"news.{kind}"
        if not 0.0 <= k.rate <= 1.0:
            raise ValueError(f"{key}.rate: must be in [0, 1] (a probability per tick), got {k.rate}")
        if k.min_interval < 0:
            raise ValueError(f"{key}.min_interval: must be >= 0, got {k.min_interval}")
        if not math.isfinite(k.mean):
            raise ValueError(f"{key}.mean: must be finite, got {k.mean}")
        if not (math.isfinite(k.std) and k.std >= 0):
            raise ValueError(f"{key}.std: must be >= 0, got {k.std}")
        if not math.isfinite(k.sentiment):
            raise ValueError(f"{key}.sentiment: must be finite, got {k.sentiment}")
        if k.duration < 1:
            raise ValueError(f"{key}.duration: must be >= 1, got {k.duration}")
    _scheduled(cfg, symbols, cfg.market.sector_names())


def make_fundamentals(cfg, n_symbols: int, sector_names, sector_of, tick_size_units):
    """``(NewsParams, FundamentalsState)`` at the opening, from ``cfg.fundamentals``,
    ``cfg.news`` and ``cfg.market`` (symbol names, opening prices). EPS is
    ``fundamentals.eps_each`` or calibrated so that each opening fair value equals the
    initial price. Raises ValueError ``key: problem`` (see ``check_config``)."""
    check_config(cfg)
    fc = cfg.fundamentals
    kinds = [getattr(cfg.news, k) for k in EVENT_KINDS]
    tick, kind, target, size = _scheduled(cfg, list(cfg.market.symbols)[:n_symbols], tuple(sector_names))
    news = NewsParams(
        rate=jnp.asarray([k.rate for k in kinds], jnp.float64),
        min_interval=jnp.asarray([k.min_interval for k in kinds], jnp.int64),
        mean=jnp.asarray([k.mean for k in kinds], jnp.float64),
        std=jnp.asarray([k.std for k in kinds], jnp.float64),
        sentiment=jnp.asarray([k.sentiment for k in kinds], jnp.float64),
        decay=jnp.asarray([math.exp(-1.0 / k.duration) for k in kinds], jnp.float64),
        tick=jnp.asarray(tick), kind=jnp.asarray(kind), target=jnp.asarray(target), size=jnp.asarray(size),
        min_spread=jnp.asarray(fc.min_spread, jnp.float64),
        pe_lo=jnp.asarray(fc.pe_bounds[0], jnp.float64),
        pe_hi=jnp.asarray(fc.pe_bounds[1], jnp.float64),
        sector_of=jnp.asarray(np.asarray(sector_of, np.int32)),
        tick_size=jnp.asarray(np.asarray(tick_size_units, np.float64)),
    )
    state = FundamentalsState(
        eps=jnp.asarray(_opening_eps(cfg, n_symbols)),
        growth=jnp.asarray(_per_symbol(fc.growth_each, fc.growth, n_symbols)),
        payout=jnp.asarray(_per_symbol(fc.payout_each, fc.payout, n_symbols)),
        rate=jnp.asarray(fc.rate, jnp.float64),
        erp=jnp.asarray(fc.erp, jnp.float64),
        sentiment=jnp.zeros((N_KINDS, n_symbols), jnp.float64),
        last_event=jnp.full(N_KINDS, NEVER, jnp.int64),
        fair=jnp.zeros(n_symbols, jnp.float64),
        news_tick=jnp.full((N_KINDS, n_symbols), NEVER, jnp.int64),
    )
    return news, state.replace(fair=fair_value(state, news))


# ---------------------------------------------------------------------------------------
# Reading the record (host)


def event_rows(events, tick: int, symbols, sector_names, sector_of) -> list[tuple]:
    """The valid events of one tick's record (``frame["events"]``, host numpy) as rows
    ``(tick, kind, target, size, symbols, fair_before, fair_after)`` in the events.csv
    format: target is a symbol name, a sector name or "all"; symbols are the affected
    names joined by ';'; fair values in currency."""
    ev = np.asarray(events)
    f = {name: ev[i] for i, name in enumerate(EVENT_FIELDS)}
    sector_of = np.asarray(sector_of)
    rows = []
    for j in np.flatnonzero(f["valid"] > 0):
        kind, target = int(f["kind"][j]), int(f["target"][j])
        if kind == RATE:
            name, hit = "all", list(symbols)
        elif kind == SECTOR:
            name, hit = sector_names[target], [s for s, k in zip(symbols, sector_of) if k == target]
        else:
            name, hit = symbols[target], [symbols[target]]
        rows.append((int(tick), EVENT_KINDS[kind], name, float(f["size"][j]), ";".join(hit),
                     float(f["fair_before"][j]) / SCALE, float(f["fair_after"][j]) / SCALE))
    return rows
