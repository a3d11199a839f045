"""Shared parts of the tier 2 (reactive) strategies: wake conditions, their mask, updates.

A tier 2 agent acts only on the ticks where one of its wake conditions fires. Its
conditions are one row of a ``Wake`` (struct of arrays, agent axis first) kept in the
kind's own state (``state.kinds[KIND].wake``). Every tick the kind evaluates ``wake_mask``
over all of its rows at once, one vectorised expression with no per-row branch and no
index structure, decides for the rows that woke, and returns its new conditions. The
write phase stores them (``systems.decide.commit_decisions``), so a condition set, moved
or removed at tick t is in force from tick t + 1; the mask of tick t reads only the
conditions stored before tick t began.

The conditions of a row, evaluated at tick t >= 1 (nothing fires at tick 0, the opening).
``last`` is the close of tick t - 1 of the row's ``symbol`` (``state.market.last``) and
``prev`` the close of tick t - 2, which the row remembered as ``seen`` at its decision of
tick t - 1 (the opening price at tick 1; 0 before that, so no crossing at tick 0)::

    ABOVE     crossed above:  above > 0 and 0 < prev < above <= last
    BELOW     crossed below:  below > 0 and prev > below >= last (prev > 0)
    INTERVAL  a timer:        every > 0 and t >= next_tick
    EVENT     subscribed news: for some kind k with bit k of ``events`` set
              (``1 << k`` for ``EVENT_KINDS[k]``), an event of kind k fired in tick
              t - 1 (``news_tick[k, s] == t - 1``) on a symbol s in the row's scope:

              scope == OWN (-1)   s is the row's own ``symbol``
              scope == ANY (-2)   any symbol
              scope == j >= 0     any symbol of sector j (``sector_of[s] == j``)

A crossing is a change between two closes: a threshold equal to ``last`` that ``prev``
was on the other side of counts, one that both closes sit on does not. Thresholds and
prices are integer units on the symbol's tick grid, so the comparisons are exact. 0 means
"no condition" for ``above``, ``below``, ``every`` and ``events``.

The mask returns which rows fired and why (``reason``: an OR of the bits ABOVE, BELOW,
INTERVAL, EVENT). Conditions never clear themselves: a kind removes or moves a
threshold it acted on, and re-arms a timer (``rearm``) when it wants the next interval,
with the update helpers below (``set_above``, ``clear_below``, ``set_interval``, ...),
each ``(w, where, ...) -> Wake`` changing only the rows where ``where`` holds. ``observe``
must be applied every tick: it remembers ``last`` as the next tick's ``prev`` and records
the tick and reason of the rows that fired (``fired_at``, ``reason``), so tests and
reports can see exactly when each row woke.

A woken agent trades with ``react_rows``: one immediate-or-cancel row per agent, sized
and priced like the signal strategies' orders (``_signal.trade_rows``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from components.frame import Frame
from components.fundamentals import EVENT_KINDS
from components.orders import OrderBatch
from components.wake import ABOVE, ANY, BELOW, EVENT, INTERVAL, NEVER_FIRED, OWN, Wake
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._signal import Trade, trade_rows
from systems.ticks import ceil_tick, floor_tick


def make_wake(
    symbol: ArrayLike,
    every: ArrayLike = 0,
    next_tick: ArrayLike = 0,
    events: ArrayLike = 0,
    scope: ArrayLike = OWN,
) -> Wake:
    """A Wake with no price thresholds, that has never fired: ``symbol`` [n] fixes the
    rows; the other arguments (ticks, a bit mask, a scope) broadcast from numbers or [n]."""
    symbol = jnp.asarray(symbol, jnp.int32)
    n = symbol.shape[0]

    def full(x, dtype):
        return jnp.broadcast_to(jnp.asarray(x, dtype), (n,))

    zeros = jnp.zeros(n, jnp.int64)
    return Wake(
        symbol=symbol,
        above=zeros,
        below=zeros,
        every=full(every, jnp.int64),
        next_tick=full(next_tick, jnp.int64),
        events=full(events, jnp.int32),
        scope=full(scope, jnp.int32),
        seen=zeros,
        fired_at=jnp.full(n, NEVER_FIRED, jnp.int64),
        reason=jnp.zeros(n, jnp.int32),
    )


def subscription(names: str) -> int:
    """Event bit mask of a comma-separated list of ``EVENT_KINDS`` names, e.g.
    ``"earnings, sector"`` -> ``0b1001``. ValueError naming an unknown kind."""
    mask = 0
    for name in (x.strip() for x in names.split(",")):
        if not name:
            continue
        if name not in EVENT_KINDS:
            raise ValueError(f"unknown event kind '{name}'; allowed: {', '.join(EVENT_KINDS)}")
        mask |= 1 << EVENT_KINDS.index(name)
    return mask


def news_bits(news_tick: jax.Array, tick: jax.Array, sector_of: jax.Array) -> jax.Array:
    """Bit masks of the event kinds that fired in tick ``tick - 1``, per place a row can
    subscribe to: i32[2S + 1] = per symbol [S], per sector index [S] (sectors never
    outnumber symbols; unused sector slots are 0), anywhere [1].

    ``news_tick`` i64[K, S]: tick of the last event of each kind on each symbol;
    ``sector_of`` i32[S]: sector index of each symbol."""
    k, s = news_tick.shape
    fresh = news_tick == tick - 1  # bool[K, S]
    bit = (jnp.int32(1) << jnp.arange(k, dtype=jnp.int32))[:, None]  # distinct bits: sum == or
    in_sector = sector_of[None, :] == jnp.arange(s, dtype=sector_of.dtype)[:, None]  # [sector, S]
    sector_fresh = (fresh[:, None, :] & in_sector[None]).any(-1)  # bool[K, sector]
    per_symbol = (fresh * bit).sum(0, dtype=jnp.int32)
    per_sector = (sector_fresh * bit).sum(0, dtype=jnp.int32)
    anywhere = (fresh.any(1, keepdims=True) * bit).sum(0, dtype=jnp.int32)
    return jnp.concatenate([per_symbol, per_sector, anywhere])


def wake_mask(
    w: Wake,
    last: jax.Array,
    prev: jax.Array,
    tick: jax.Array,
    news_tick: jax.Array,
    sector_of: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Which rows wake at tick ``tick`` and why (see the module docstring for the rule).

    ``last``, ``prev``: i64[n] closes of each row's symbol at ticks t-1 and t-2 (units; 0:
    unknown); ``news_tick`` i64[K, S]; ``sector_of`` i32[S]. Returns ``(fired bool[n],
    reason i32[n])``; ``reason`` is 0 where nothing fired."""
    s = news_tick.shape[1]
    known = prev > 0
    up = (w.above > 0) & known & (prev < w.above) & (w.above <= last)
    down = (w.below > 0) & known & (prev > w.below) & (w.below >= last)
    timer = (w.every > 0) & (tick >= w.next_tick)
    sector_slot = s + jnp.clip(w.scope, 0, s - 1)
    slot = jnp.where(w.scope == OWN, w.symbol, jnp.where(w.scope == ANY, 2 * s, sector_slot))
    news = (news_bits(news_tick, tick, sector_of)[slot] & w.events) != 0
    reason = (
        up.astype(jnp.int32) * ABOVE
        | down.astype(jnp.int32) * BELOW
        | timer.astype(jnp.int32) * INTERVAL
        | news.astype(jnp.int32) * EVENT
    )
    reason = jnp.where(tick > 0, reason, 0)
    return reason != 0, reason


def evaluate(w: Wake, world: WorldParams, state: WorldState) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``wake_mask`` on the world at the current tick: ``last`` from the market, ``prev``
    from ``w.seen``. Returns ``(fired bool[n], reason i32[n], last i64[n])``."""
    last = state.market.last[w.symbol]
    fired, reason = wake_mask(
        w, last, w.seen, state.tick, state.fundamentals.news_tick, world.news.sector_of
    )
    return fired, reason, last


def has(reason: jax.Array, bits: int) -> jax.Array:
    """Rows whose wake ``reason`` includes any of ``bits``. bool[n]"""
    return (reason & bits) != 0


def idle(w: Wake) -> jax.Array:
    """Rows with no condition at all (never armed, e.g. at the opening). bool[n]"""
    return (w.above == 0) & (w.below == 0) & (w.every == 0) & (w.events == 0)


# ---------------------------------------------------------------------------------------
# Parametric updates: each returns a new Wake, changing only the rows where ``where``.


def observe(w: Wake, fired: jax.Array, reason: jax.Array, tick: jax.Array, last: jax.Array) -> Wake:
    """Remember ``last`` as the next tick's ``prev``; record the tick and reason of the
    rows that ``fired``. Every kind applies this once per tick."""
    return w.replace(
        seen=last.astype(jnp.int64),
        fired_at=jnp.where(fired, tick, w.fired_at).astype(jnp.int64),
        reason=jnp.where(fired, reason, w.reason).astype(jnp.int32),
    )


def set_above(w: Wake, where: jax.Array, price: jax.Array) -> Wake:
    """Wake when the close crosses up through ``price`` (i64 units, on the tick grid)."""
    return w.replace(above=jnp.where(where, price, w.above).astype(jnp.int64))


def set_below(w: Wake, where: jax.Array, price: jax.Array) -> Wake:
    """Wake when the close crosses down through ``price`` (i64 units, on the tick grid)."""
    return w.replace(below=jnp.where(where, price, w.below).astype(jnp.int64))


def clear_above(w: Wake, where: jax.Array) -> Wake:
    """Remove the upward threshold."""
    return w.replace(above=jnp.where(where, 0, w.above))


def clear_below(w: Wake, where: jax.Array) -> Wake:
    """Remove the downward threshold."""
    return w.replace(below=jnp.where(where, 0, w.below))


def set_interval(w: Wake, where: jax.Array, every: jax.Array, tick: jax.Array) -> Wake:
    """Start a timer of ``every`` ticks (> 0) now: it fires at ``tick + every``."""
    every = jnp.where(where, every, w.every).astype(jnp.int64)
    return w.replace(every=every, next_tick=jnp.where(where, tick + every, w.next_tick))


def rearm(w: Wake, where: jax.Array, tick: jax.Array) -> Wake:
    """Restart the timer from ``tick``: it next fires at ``tick + every``."""
    return w.replace(next_tick=jnp.where(where, tick + w.every, w.next_tick))


def clear_interval(w: Wake, where: jax.Array) -> Wake:
    """Stop the timer."""
    return w.replace(every=jnp.where(where, 0, w.every))


def subscribe(w: Wake, where: jax.Array, events: jax.Array | int, scope: jax.Array | int) -> Wake:
    """Replace the news subscription: event bit mask ``events`` (0: none) in ``scope``."""
    return w.replace(
        events=jnp.where(where, events, w.events).astype(jnp.int32),
        scope=jnp.where(where, scope, w.scope).astype(jnp.int32),
    )


# ---------------------------------------------------------------------------------------
# Prices and orders


def band(price: jax.Array, frac: jax.Array, tick: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Thresholds ``frac`` below and above ``price`` (float units), snapped outward to the
    tick grid: ``(floor_tick(price * (1 - frac)), ceil_tick(price * (1 + frac)))``, i64."""
    return floor_tick(price * (1.0 - frac), tick), ceil_tick(price * (1.0 + frac), tick)


def react_rows(
    static: WorldStatic, kind: KindStatic, world: WorldParams, t: Trade, state: WorldState, frame: Frame, want: jax.Array
) -> OrderBatch:
    """Each agent's wish ``want`` i64[n] (shares, > 0 buy, < 0 sell, 0 nothing) -> one
    immediate-or-cancel row per agent on ``t.symbol``, ``collar`` through the reference,
    capped by ``size``, the room under ``max_position`` and the unreserved cash or shares
    (``_signal.trade_rows`` without its cancel row: a tier 2 agent never rests an order).
    """
    rows = trade_rows(static, kind, world, t, state, frame, want)
    return jax.tree.map(lambda x: x[1::2], rows)


def stagger(count: int, every: np.ndarray) -> np.ndarray:
    """First timer tick of each of ``count`` agents with intervals ``every`` i64[count]:
    ``1 + floor(i * every_i / count)``, spreading the kind's wakes over the interval. i64"""
    i = np.arange(count, dtype=np.int64)
    return 1 + (i * np.asarray(every, np.int64)) // max(count, 1)
