"""Fundamentals and news on the host: checked and built from the config, and each tick's news
record read back as rows.

The device side (fair value, the events of a tick) is :mod:`systems.fundamentals`; this
module turns ``cfg.fundamentals`` and ``cfg.news`` into its ``NewsParams`` and opening
``FundamentalsState``, and ``TickResult.events`` into the events.csv rows that the
recorder, the storage hook and the terminal view show.
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np

from components.fundamentals import (
    EVENT_FIELDS,
    EVENT_KINDS,
    NEVER,
    RATE,
    SECTOR,
    FundamentalsState,
    NewsParams,
)
from components.money import SCALE
from systems.fundamentals import N_KINDS, calibrated_eps, fair_value


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


def check_news_config(cfg) -> None:
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


def check_schedule_in_run(cfg) -> None:
    """Every scheduled event falls within the run: ticks run from 0 to ``run.ticks - 1``,
    so an event at a later tick would never happen. Raise ValueError ``key: problem``
    naming the first such event. Not for a resumed run: its events come from its snapshot
    (checked when that run started), and its ``run.ticks`` may end it early, like a stop."""
    ticks = cfg.run.ticks
    for i, ev in enumerate(cfg.news.scheduled):
        if ev.tick >= ticks:
            what = f"{ev.kind} event" + (f" on {ev.target}" if ev.target and ev.kind != "rate" else "")
            raise ValueError(f"news.scheduled[{i}].tick: {ev.tick} is past run.ticks ({ticks}); the {what} "
                             f"would never happen (ticks run 0 to {ticks - 1}): move it or raise run.ticks")


def make_fundamentals(cfg, n_symbols: int, sector_names, sector_of, tick_size_units):
    """``(NewsParams, FundamentalsState)`` at the opening, from ``cfg.fundamentals``,
    ``cfg.news`` and ``cfg.market`` (symbol names, opening prices). EPS is
    ``fundamentals.eps_each`` or calibrated so that each opening fair value equals the
    initial price. Raises ValueError ``key: problem`` (see ``check_news_config``)."""
    check_news_config(cfg)
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
        drift=jnp.asarray(fc.drift, jnp.float64),
        volatility=jnp.asarray(fc.volatility, jnp.float64),
        jump_rate=jnp.asarray(fc.jump_rate, jnp.float64),
        jump_std=jnp.asarray(fc.jump_std, jnp.float64),
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
        news_move=jnp.zeros(n_symbols, jnp.float64),
        news_tick=jnp.full((N_KINDS, n_symbols), NEVER, jnp.int64),
    )
    return news, state.replace(fair=fair_value(state, news))


def event_rows(events, tick: int, symbols, sector_names, sector_of) -> list[tuple]:
    """The valid events of one tick's record (``frame.events``, host numpy) as rows
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
