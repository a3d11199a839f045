"""Seeded synthetic order streams for benchmarks and engine tests.

All prices are in units (fixed point, 10,000 per currency unit) on each symbol's tick
grid; quantities are whole shares.
"""

from __future__ import annotations

import numpy as np

from components.orders import OrderBatch, OrderType, Side

REF_PRICE: int = 1_000_000
"""Default reference price in units (100.00)."""

TICK: int = 100
"""Default tick size in units (0.01)."""


def standard_stream(
    n: int = 200_000,
    n_symbols: int = 1,
    seed: int = 0,
    *,
    ref_price: int = REF_PRICE,
    tick: int = TICK,
    n_agents: int = 1_000,
    p_limit: float = 0.7,
    p_market: float = 0.2,
    p_marketable: float = 0.5,
    max_qty: int = 100,
    max_depth_ticks: int = 20,
    cancel_window: int = 200,
    first_id: int = 1,
) -> OrderBatch:
    """The standard benchmark stream: ``n`` orders over ``n_symbols`` symbols.

    Mix: ``p_limit`` (70%) LIMIT orders, ``p_market`` (20%) MARKET orders, the rest
    (10%) CANCELs. Every symbol trades around the same fixed reference price:
    a ``p_marketable`` share (half) of the limit orders is priced 1-3 ticks *through*
    the reference (buys above it, sells below it: they cross the spread), the others
    1 to ``max_depth_ticks`` ticks behind it on their own side (geometric, mean about
    6 ticks). A CANCEL names a recent passive order more than 4 ticks behind the
    reference (one of the last ``cancel_window`` such orders, no repeats where
    avoidable), so most targets still rest; the few CANCELs that come before any such
    order become MARKET orders. Quantities are uniform in ``1..max_qty`` shares, agents
    in ``0..n_agents-1``, symbols uniform. New orders get ids ``first_id + row``; a
    CANCEL carries its target's id, agent, symbol and side, price 0 and qty 0; MARKET
    rows carry price 0.

    On the default stream (one symbol, seed 0) the exact engine makes 153,239 fills and
    ends with 9,432 resting orders on 33 levels; 32% of the limit orders fill on arrival
    (the marketable ones meet liquidity about two times in three, the touch wanders a
    few ticks around the reference), market orders almost always fill in full, and 81%
    of the cancels find their target (the rest get ``UNKNOWN_ORDER``).

    Args:
        n: number of rows ``B``.
        n_symbols: number of symbols ``S``; every symbol uses ``ref_price`` and ``tick``.
        seed: NumPy ``default_rng`` seed; the same arguments give the same stream.
        ref_price: reference price in units, a multiple of ``tick``.
        tick: tick size in units.
    Returns:
        OrderBatch of ``n`` valid rows, every LIMIT price positive and on the tick grid.
    """
    if ref_price % tick != 0 or ref_price <= max_depth_ticks * tick:
        raise ValueError("ref_price must be on the tick grid and deeper than max_depth_ticks")
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    kind = np.where(
        u < p_limit, OrderType.LIMIT, np.where(u < p_limit + p_market, OrderType.MARKET, OrderType.CANCEL)
    ).astype(np.int8)
    side = rng.integers(0, 2, n).astype(np.int8)
    qty = rng.integers(1, max_qty + 1, n).astype(np.int64)
    symbol = rng.integers(0, n_symbols, n).astype(np.int32)
    agent = rng.integers(0, n_agents, n).astype(np.int32)
    marketable = rng.random(n) < p_marketable

    # Signed ticks away from the reference, + meaning towards (and through) the other side.
    aggressive_ticks = rng.integers(1, 4, n)
    passive_ticks = np.minimum(rng.geometric(0.15, n), max_depth_ticks)
    through = np.where(marketable, aggressive_ticks, -passive_ticks)
    sign = np.where(side == Side.BUY, 1, -1)
    price = (ref_price + sign * through * tick).astype(np.int64)
    price[kind == OrderType.MARKET] = 0

    ids = first_id + np.arange(n, dtype=np.int64)

    # CANCEL rows name a recent deep passive LIMIT row that came before them.
    passive_rows = np.flatnonzero((kind == OrderType.LIMIT) & ~marketable & (passive_ticks > 4))
    cancel_rows = np.flatnonzero(kind == OrderType.CANCEL)
    n_before = np.searchsorted(passive_rows, cancel_rows)
    orphan = n_before == 0
    kind[cancel_rows[orphan]] = OrderType.MARKET  # nothing to cancel yet
    cancel_rows, n_before = cancel_rows[~orphan], n_before[~orphan]
    window = np.minimum(n_before, cancel_window)
    draws = (rng.random((cancel_rows.shape[0], 8)) * window[:, None]).astype(np.int64)
    target = np.empty(cancel_rows.shape[0], np.int64)
    used: set[int] = set()
    for j in range(cancel_rows.shape[0]):  # up to 8 draws to avoid a repeat
        for back in draws[j]:
            t = int(passive_rows[n_before[j] - 1 - back])
            if t not in used:
                break
        used.add(t)
        target[j] = t
    ids[cancel_rows] = ids[target]
    agent[cancel_rows] = agent[target]
    symbol[cancel_rows] = symbol[target]
    side[cancel_rows] = side[target]
    price[cancel_rows] = 0
    qty[cancel_rows] = 0

    return OrderBatch.from_numpy(
        id=ids, agent=agent, symbol=symbol, side=side, kind=kind, price=price, qty=qty
    )


def mixed_stream(
    n: int,
    n_symbols: int = 2,
    seed: int = 0,
    *,
    n_agents: int = 4,
    n_levels: int = 5,
    max_qty: int = 8,
    tick: int | list[int] = TICK,
    p_invalid: float = 0.05,
    first_id: int = 1,
) -> OrderBatch:
    """A small, dense, adversarial stream for differential tests: every kind, few agents,
    few price levels, reused and foreign ids, and some malformed rows.

    Prices are ``tick[symbol] * (1..2*n_levels)`` (so books cross often), occasionally
    0, negative or off the grid; quantities ``1..max_qty``, occasionally 0 or negative;
    kinds, sides and symbols occasionally out of range. CANCEL and MODIFY rows name one
    of the last 12 LIMIT/POST_ONLY rows (95%), usually as its owner on its symbol (90%),
    and a third of the MODIFYs keep that row's price; 5% of new orders reuse such an id
    (a duplicate if it still rests). ``valid`` is False for ``p_invalid`` of the rows.

    Args:
        tick: one tick size in units for all symbols, or one per symbol.
    Returns:
        OrderBatch of ``n`` rows.
    """
    rng = np.random.default_rng(seed)
    ticks = np.broadcast_to(np.asarray(tick, np.int64), (n_symbols,))
    kind = rng.choice(np.array([0, 0, 0, 0, 1, 2, 3, 4, 4, 5, 5, 5], np.int8), size=n)
    odd = rng.random(n) < 0.02
    kind[odd] = rng.choice(np.array([-1, 6, 9], np.int8), size=int(odd.sum()))
    side = rng.integers(0, 2, n).astype(np.int8)
    side[rng.random(n) < 0.01] = 2
    symbol = rng.integers(0, n_symbols, n).astype(np.int32)
    agent = rng.integers(0, n_agents, n).astype(np.int32)
    price = ticks[symbol] * rng.integers(1, 2 * n_levels + 1, n).astype(np.int64)
    r = rng.random(n)
    price[r < 0.01] = 0
    price[(r >= 0.01) & (r < 0.02)] = -ticks[symbol[(r >= 0.01) & (r < 0.02)]]
    price[(r >= 0.02) & (r < 0.03)] += 1
    qty = rng.integers(1, max_qty + 1, n).astype(np.int64)
    qty[rng.random(n) < 0.02] = 0
    ids = first_id + np.arange(n, dtype=np.int64)

    # Reused ids point at one of the last 12 LIMIT/POST_ONLY rows before the row.
    rows = np.arange(n)
    cand = np.flatnonzero((kind == OrderType.LIMIT) | (kind == OrderType.POST_ONLY))
    n_before = np.searchsorted(cand, rows)
    acts_on = (kind == OrderType.CANCEL) | (kind == OrderType.MODIFY)
    refer = np.where(acts_on, rng.random(n) < 0.95, rng.random(n) < 0.05) & (n_before > 0)
    back = (rng.random(n) * np.minimum(n_before, 12)).astype(np.int64)
    src = cand[np.maximum(n_before - 1 - back, 0)] if cand.size else rows
    ids[refer] = ids[src[refer]]
    same = refer & (rng.random(n) < 0.9)
    agent[same] = agent[src[same]]
    sym_bad = rng.random(n) < 0.01
    symbol[same] = symbol[src[same]]
    keep_price = same & (kind == OrderType.MODIFY) & (rng.random(n) < 1 / 3)
    price[keep_price] = price[src[keep_price]]
    symbol[sym_bad] = n_symbols  # out of range
    valid = rng.random(n) >= p_invalid
    return OrderBatch.from_numpy(
        id=ids, agent=agent, symbol=symbol, side=side, kind=kind, price=price, qty=qty, valid=valid
    )


def split_batch(batch: OrderBatch, n_parts: int, seed: int = 0) -> list[OrderBatch]:
    """Cut ``batch`` into ``n_parts`` consecutive pieces at seeded random points (some
    pieces may be empty)."""
    n = len(batch)
    cuts = np.sort(np.random.default_rng(seed).integers(0, n + 1, max(n_parts - 1, 0)))
    bounds = np.concatenate([[0], cuts, [n]])
    return [batch.take(np.arange(bounds[k], bounds[k + 1])) for k in range(len(bounds) - 1)]
