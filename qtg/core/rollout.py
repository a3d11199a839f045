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


MARKETS = "markets"
"""The name of :func:`rollout_markets`' ``vmap`` axis (the match's loop runs to the
largest count of arrivals along it: ``systems.matching.device.match_batch``)."""


@functools.lru_cache(maxsize=8)
def device_schedule(stp: int, axis_name: str | None = None, in_order: bool = False) -> tuple[sch.Stage, ...]:
    """The tick with the device match (self-trade prevention ``stp``): the default
    schedule's stages in the same places, so each draws the same key. ``axis_name``: the
    ``vmap`` axis over markets the tick runs inside, if any; ``in_order``: match in arrival
    order whatever the market (``systems.matching.device.match_batch``)."""
    match = sch.Stage("match", functools.partial(match_on_device, stp=int(stp), axis_name=axis_name,
                                                 in_order=bool(in_order)))
    admit = sch.Stage("admit", admit_orders, writes=False)
    swap = {"match": match, "admit": admit}
    return sch.compose(*(swap.get(s.name, s) for s in sch.DEFAULT_SCHEDULE))


def with_books(state: WorldState, static: WorldStatic, capacity: int) -> WorldState:
    """``state`` with empty books of ``capacity`` orders per side for every symbol (a
    world as ``build_world`` makes it has none: its host engine holds them)."""
    return state.replace(books=empty_book(int(capacity), static.n_symbols))


def _tick(static, params, state, stp, axis_name, in_order=False):
    """The tick's stages in order: the new state and the tick's frame."""
    schedule = device_schedule(int(stp), axis_name, bool(in_order))
    run = sch.tick_function(schedule, tuple(range(len(schedule))), writes=True)
    return run(static, params, state, Frame())


def _outputs(tick, state: WorldState, frame: Frame) -> TickOutputs:
    m, f = state.market, frame.matched
    return TickOutputs(
        tick=tick, bid=m.bid, ask=m.ask, last=m.last, high=m.high, low=m.low, volume=m.volume,
        marks=frame.marks, equity_by_kind=frame.equity_by_kind, rejects=frame.rejects, status=frame.status,
        arrivals=f.n, fills=(frame.fills[-1] > 0).sum().astype(jnp.int64), book_full=f.book_full,
    )


def step(static: WorldStatic, params: WorldParams, state: WorldState, stp: int = STP.NONE,
         axis_name: str | None = None, in_order: bool = False) -> tuple[WorldState, TickOutputs]:
    """One tick, all on the device: ``(state, outputs)``. ``state`` needs books
    (:func:`with_books`). Pure: jit it with ``static`` and ``stp`` static. ``axis_name``:
    the ``vmap`` axis over markets it runs inside, if any (:func:`rollout_markets`);
    ``in_order`` (static): match in arrival order whatever the market, for a step that
    code it does not own may vmap (``systems.matching.device.match_batch``)."""
    new, frame = _tick(static, params, state, stp, axis_name, in_order)
    return new, _outputs(state.tick, new, frame)


@struct.dataclass
class TickRecord:
    """All a host loop reports of one device tick (``qtg.core.sim.TickResult``), in fixed
    shapes: B batch rows, S symbols, F fill slots. The first ``outputs.arrivals`` rows of
    ``orders`` and ``outcomes`` are the orders that reached the book, in arrival order;
    ``fills`` slots with a quantity are the fills, in the order they happened."""

    outputs: TickOutputs
    bid_qty: jax.Array  # i64[S] shares at the best bid after the tick
    ask_qty: jax.Array  # i64[S]
    fair: jax.Array  # f64[S] fair value in force after the tick
    events: jax.Array  # f64[len(EVENT_FIELDS), E] the tick's news
    fills: jax.Array  # i64[6, F] systems.match.FILL_FIELDS
    fill_ids: jax.Array  # i64[2, F] taker and maker order ids
    orders: Any  # OrderBatch [B] in arrival order
    outcomes: Any  # Outcomes [B] in arrival order


def step_record(static: WorldStatic, params: WorldParams, state: WorldState,
                stp: int = STP.NONE) -> tuple[WorldState, TickRecord]:
    """:func:`step` with everything the host loop reports of the tick
    (:class:`TickRecord`): what ``python -m qtg.run engine=device`` runs each tick
    (``qtg.core.sim.DeviceSimulation``)."""
    new, frame = _tick(static, params, state, stp, None)
    m = frame.matched
    record = TickRecord(
        outputs=_outputs(state.tick, new, frame), bid_qty=new.market.bid_qty, ask_qty=new.market.ask_qty,
        fair=new.fundamentals.fair, events=frame.events, fills=m.fills, fill_ids=m.fill_ids,
        orders=jax.tree.map(lambda a: a[m.arrival], frame.orders), outcomes=m.outcomes,
    )
    return new, record


def rollout(static: WorldStatic, params: WorldParams, state: WorldState, ticks: int,
            stp: int = STP.NONE, axis_name: str | None = None) -> tuple[WorldState, TickOutputs]:
    """``ticks`` ticks by ``lax.scan`` of :func:`step`: the final state and every tick's
    :class:`TickOutputs` stacked ``[ticks, ...]``. Jit it with ``static``, ``ticks`` and
    ``stp`` static; the same shapes never compile twice."""
    def body(s, _):
        return step(static, params, s, stp, axis_name)

    return jax.lax.scan(body, state, None, length=int(ticks))


def rollout_markets(static: WorldStatic, params: WorldParams, states: WorldState, ticks: int,
                    stp: int = STP.NONE) -> tuple[WorldState, TickOutputs]:
    """:func:`rollout` of many markets of one shape at once (``vmap``): every leaf of
    ``params`` and ``states`` has a leading market axis (:func:`replicate` makes them);
    outputs are ``[markets, ticks, ...]``. Market ``i`` is exactly the rollout of
    ``params[i]`` and ``states[i]`` alone."""
    return jax.vmap(lambda p, s: rollout(static, p, s, ticks, stp, MARKETS), axis_name=MARKETS)(params, states)


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
