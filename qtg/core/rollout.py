"""The whole tick on the device: one pure ``step``, a ``rollout`` of ticks by ``lax.scan``,
and many markets at once by ``vmap``.

The tick here is :data:`qtg.core.schedule.DEFAULT_SCHEDULE` with its one host stage, the
match, replaced by the device match (``systems.match.match_on_device`` over the books in
``state.books``), and admission run in its exact form only (the host loop tries a faster
variant first and falls back to it; the results are the same). Every stage keeps its
place, so it draws the same keys: a rollout trades exactly as ``engine=fast`` does in the
host loop while no book side fills up (an order that would rest on a full side is
refused with ``Reason.BOOK_FULL`` and counted in :attr:`TickOutputs.book_full`).

Usage::

    world = build_world(cfg)
    state = with_books(world.state, world.static, capacity=64)
    run = jax.jit(rollout, static_argnums=(0, 3, 4))
    state, out = run(world.static, world.params, state, 100, STP.NONE)  # out: [100, ...]

    params, states = replicate(world.params, state, seeds=range(64))   # 64 markets
    states, out = jax.jit(rollout_markets, static_argnums=(0, 3, 4))(world.static, params, states, 100, 0)

Nothing leaves the device inside a rollout; :class:`TickOutputs` (a few numbers per
symbol and kind per tick) is what comes back for hooks and reports to read.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from components.book import empty_book
from components.frame import Frame
from components.orders import STP
from components.world import WorldParams, WorldState, WorldStatic
from qtg.core import schedule as sch
from systems.admission import admit_orders
from systems.match import match_on_device


@struct.dataclass
class TickOutputs:
    """What one tick of a rollout reports (a rollout stacks them ``[T, ...]``; markets
    add a leading axis). Prices in units, quantities in shares."""

    tick: jax.Array  # i64[] the tick's number
    bid: jax.Array  # i64[S] best bid after the tick (0 = none)
    ask: jax.Array  # i64[S]
    last: jax.Array  # i64[S] last trade price (the tick bar's close)
    high: jax.Array  # i64[S]
    low: jax.Array  # i64[S]
    volume: jax.Array  # i64[S] shares traded in the tick
    marks: jax.Array  # f64[S] mark price after the tick
    equity_by_kind: jax.Array  # f64[K] total equity of each kind's agents
    rejects: jax.Array  # i64[len(Reason)] admission refusals per reason
    status: jax.Array  # i64[len(Status)] engine outcomes per status
    arrivals: jax.Array  # i32[] orders that reached the book
    fills: jax.Array  # i64[] fills in the tick
    book_full: jax.Array  # i64[] orders refused for a full book side


@functools.lru_cache(maxsize=8)
def device_schedule(stp: int) -> tuple[sch.Stage, ...]:
    """The tick with the device match (self-trade prevention ``stp``): the default
    schedule's stages in the same places, so each draws the same key."""
    match = sch.Stage("match", functools.partial(match_on_device, stp=int(stp)))
    admit = sch.Stage("admit", admit_orders, writes=False)
    swap = {"match": match, "admit": admit}
    return sch.compose(*(swap.get(s.name, s) for s in sch.DEFAULT_SCHEDULE))


def with_books(state: WorldState, static: WorldStatic, capacity: int) -> WorldState:
    """``state`` with empty books of ``capacity`` orders per side for every symbol (a
    world as ``build_world`` makes it has none: its host engine holds them)."""
    return state.replace(books=empty_book(int(capacity), static.n_symbols))


def step(static: WorldStatic, params: WorldParams, state: WorldState, stp: int = STP.NONE) -> tuple[WorldState, TickOutputs]:
    """One tick, all on the device: ``(state, outputs)``. ``state`` needs books
    (:func:`with_books`). Pure: jit it with ``static`` and ``stp`` static."""
    schedule = device_schedule(int(stp))
    run = sch.tick_function(schedule, tuple(range(len(schedule))), writes=True)
    tick = state.tick
    state, frame = run(static, params, state, Frame())
    m, f = state.market, frame.matched
    out = TickOutputs(
        tick=tick, bid=m.bid, ask=m.ask, last=m.last, high=m.high, low=m.low, volume=m.volume,
        marks=frame.marks, equity_by_kind=frame.equity_by_kind, rejects=frame.rejects, status=frame.status,
        arrivals=f.n, fills=(frame.fills[-1] > 0).sum().astype(jnp.int64), book_full=f.book_full,
    )
    return state, out


def rollout(static: WorldStatic, params: WorldParams, state: WorldState, ticks: int,
            stp: int = STP.NONE) -> tuple[WorldState, TickOutputs]:
    """``ticks`` ticks by ``lax.scan`` of :func:`step`: the final state and every tick's
    :class:`TickOutputs` stacked ``[ticks, ...]``. Jit it with ``static``, ``ticks`` and
    ``stp`` static; the same shapes never compile twice."""
    def body(s, _):
        return step(static, params, s, stp)

    return jax.lax.scan(body, state, None, length=int(ticks))


def rollout_markets(static: WorldStatic, params: WorldParams, states: WorldState, ticks: int,
                    stp: int = STP.NONE) -> tuple[WorldState, TickOutputs]:
    """:func:`rollout` of many markets of one shape at once (``vmap``): every leaf of
    ``params`` and ``states`` has a leading market axis (:func:`replicate` makes them);
    outputs are ``[markets, ticks, ...]``. Market ``i`` is exactly the rollout of
    ``params[i]`` and ``states[i]`` alone."""
    return jax.vmap(lambda p, s: rollout(static, p, s, ticks, stp))(params, states)


def replicate(params: WorldParams, state: WorldState, seeds: Iterable[int]) -> tuple[Any, Any]:
    """``params`` and ``state`` stacked once per seed along a new leading axis, each copy's
    key ``jax.random.key(seed)`` (the key a world built with that seed starts from): markets
    of the same configuration that draw differently. Vary any other leaf of the stacked
    ``params`` to sweep it."""
    seeds = list(seeds)
    keys = jnp.stack([jax.random.key(int(s)) for s in seeds])

    def stack(x):
        return jnp.broadcast_to(x, (len(seeds),) + jnp.shape(x))

    params = jax.tree.map(stack, params)
    state = jax.tree.map(stack, state).replace(key=keys)
    return params, state
