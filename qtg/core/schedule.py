"""The tick as data: an ordered tuple of stages, compiled into as few jitted calls as possible.

A device stage is a pure system ``fn(static, params, state, frame, key) -> (state, frame)``;
``frame`` is the tick's :class:`components.frame.Frame` of intermediate outputs. A host
stage is ``fn(host, frame) -> frame`` and runs outside JAX (the sequential matching
engine). Consecutive device stages are folded into one jitted segment, so the default tick
is two jitted calls around one engine call; the loop (``qtg.core.sim``) only runs the
segments in order. :data:`DEFAULT_SCHEDULE` is the tick, with what each stage reads and
writes. Every stage gets its own key, split from
``fold_in(state.key, state.tick)``: the same seed gives the same ticks, and a run can be
resumed from any tick without replaying the key stream.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, ClassVar, Protocol

import jax
import numpy as np

from components.frame import Frame
from components.orders import MatchResult, OrderBatch
from systems.admission import admit_orders, admit_orders_assuming_fits, borrow_fitted
from systems.background import settle_background
from systems.decide import commit_decisions, decide_orders
from systems.fundamentals import update_fundamentals
from systems.indicators import update_market_indicators
from systems.match import draw_priority, match_orders
from systems.measure import measure_equity, measure_market
from systems.observe import observe_market
from systems.rng import unroll_threefry_on_cpu
from systems.settle import settle_fills


@dataclasses.dataclass(frozen=True)
class Stage:
    """One system of the tick. ``writes=False`` marks a read-phase system: whatever state
    it returns is discarded, so the read phase cannot write.

    ``fast``, optional: a quicker variant of ``fn`` that is right only where
    ``fast_ok(frame)`` (bool[], on the frame after the stage's segment) is true. The
    segment runs the fast variant first and, on the rare tick it is not right, runs again
    with ``fn`` (so the stage's segment must not write).
    """

    name: str
    fn: Callable[..., Any]
    host: bool = False
    writes: bool = True
    fast: Callable[..., Any] | None = None
    fast_ok: Callable[[Frame], Any] | None = None


@dataclasses.dataclass
class HostResources:
    """Host-side resources of the tick: the engine, the last match (for TickResult), and
    the fast variants' switch and count (``Stage.fast``)."""

    engine: Any
    last_match: MatchResult | None = None
    last_arrival: np.ndarray | None = None  # batch row of each order the engine saw
    last_orders: OrderBatch | None = None  # those orders, in arrival order (host arrays)
    fast_paths: bool = True  # run the stages' fast variants first (False: always the exact ones)
    exact_reruns: int = 0  # segment runs repeated with the exact variants: a fast one was wrong


def compose(*stages: Stage) -> tuple[Stage, ...]:
    """The tick: ``stages`` in order (names must be unique)."""
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique, got {names}")
    return stages


def _host_match(host: HostResources, frame: Frame) -> Frame:
    """The match stage: device orders, in the arrival order of ``frame.priority`` ->
    engine -> packed fills/updates/book/status."""
    orders = jax.tree.map(np.asarray, frame.orders)
    result, arrival, arrived, packed = match_orders(host.engine, orders, np.asarray(frame.priority))
    host.last_match, host.last_arrival, host.last_orders = result, arrival, arrived
    return frame.replace(**packed)


observe = Stage("observe", observe_market, writes=False)
decide = Stage("decide", decide_orders, writes=False)
admit = Stage("admit", admit_orders, writes=False, fast=admit_orders_assuming_fits, fast_ok=borrow_fitted)
arrive = Stage("arrive", draw_priority, writes=False)
match = Stage("match", _host_match, host=True)
settle = Stage("settle", settle_fills)
commit = Stage("commit", commit_decisions)
fundamentals = Stage("fundamentals", update_fundamentals)
background = Stage("background", settle_background)
measure = Stage("measure", measure_market)
indicators = Stage("indicators", update_market_indicators)
equity = Stage("equity", measure_equity)

DEFAULT_SCHEDULE: tuple[Stage, ...] = compose(
    observe, decide, admit, arrive, match, settle, commit, fundamentals, background, measure, indicators, equity
)
"""The tick, and what each stage reads and writes of the :class:`Frame` (and the state):

=============  ===============================================  ================================
stage          reads                                            writes
=============  ===============================================  ================================
observe        state.market, .fundamentals, .indicators         view, indicators
decide         view, indicators; state (kinds, delayed, ...)    orders, kind_state, delay_push
admit          orders; state.wallet, .slots, .lender            orders.valid, reject_reason,
                                                                rejects, borrow_fits
arrive         orders (shape)                                   priority
match (host)   orders, priority                                 fills, updates, book, status
settle         fills, updates                                   state.wallet, .slots, .lender
commit         kind_state, delay_push                           state.kinds, .delayed
fundamentals   state.fundamentals (news of this tick)           state.fundamentals, events
background     fills, updates, orders                           state.background
measure        fills, book                                      state.market, state.tick + 1
indicators     state.market (the tick's bar)                    state.indicators
equity         state.wallet, .market                            state.risk, marks, equity_by_kind
=============  ===============================================  ================================

observe, decide, admit and arrive read only (the read phase: one jitted call, with
admission's fast variant first); match is the engine on the host; the rest write (one jitted call
that donates the state). Fundamentals runs after the match, so news of tick T is seen by
decisions from T + 1; commit stores the kinds' own state and delayed orders decided this
tick.
"""


class Segment(Protocol):
    """A run of stages executed together: one jitted call, or one host stage.
    ``segment(static, params, state, frame, host) -> (state, frame)``: the frame gains
    what the segment's stages fill. A writing segment donates ``state`` (the caller must
    not use the old state's buffers again)."""

    names: tuple[str, ...]
    host: bool

    def __call__(self, static, params, state, frame: Frame, host: HostResources) -> tuple[Any, Frame]: ...


@dataclasses.dataclass(frozen=True)
class HostSegment:
    """One host stage, ``fn(host, frame) -> frame``."""

    names: tuple[str, ...]
    fn: Callable[..., Frame]
    host: ClassVar[bool] = True

    def __call__(self, static, params, state, frame: Frame, host: HostResources) -> tuple[Any, Frame]:
        return state, self.fn(host, frame)


@dataclasses.dataclass(frozen=True)
class DeviceSegment:
    """Consecutive device stages as one jitted ``call(static, params, state, frame)``. It
    returns a frame of only the fields it filled or replaced (an unchanged input would be
    copied), preceded by the new state if it ``writes`` (its state argument is donated).

    ``fast``: the same segment compiled with its stages' fast variants (``Stage.fast``),
    tried first when ``host.fast_paths``; where a stage's ``fast_ok`` says the result is
    wrong, ``call`` runs instead and ``host.exact_reruns`` counts it. Reads only, so
    running twice changes nothing.
    """

    names: tuple[str, ...]
    call: Callable[..., Any]
    writes: bool = False
    fast: Callable[..., Any] | None = None
    fast_ok: tuple[Callable[[Frame], Any], ...] = ()
    host: ClassVar[bool] = False

    def __call__(self, static, params, state, frame: Frame, host: HostResources) -> tuple[Any, Frame]:
        if self.writes:
            state, out = self.call(static, params, state, frame)
            return state, frame.merge(out)
        if self.fast is not None and host.fast_paths:
            out = frame.merge(self.fast(static, params, state, frame))
            if all(bool(ok(out)) for ok in self.fast_ok):
                return state, out
            host.exact_reruns += 1
        return state, frame.merge(self.call(static, params, state, frame))


def stage_keys(state_key: jax.Array, tick: jax.Array, n: int) -> jax.Array:
    """The ``n`` per-stage keys of a tick."""
    return jax.random.split(jax.random.fold_in(state_key, tick), n)


@functools.lru_cache(maxsize=16)
def compile_schedule(schedule: tuple[Stage, ...], options: tuple = ()) -> tuple[Segment, ...]:
    """Group the schedule into segments; device segments are jitted with ``static`` static.

    ``options``: extra XLA compiler options as ``(name, value)`` pairs, on top of
    :func:`compiler_options` (``qtg.bench.profile_tick`` adds per-op trace events).

    Cached per schedule: every Simulation of a process with the same schedule shares the
    jitted segments, so a second world of the same shape (a resumed run, a replay) does
    not compile again. The segments are pure functions of their arguments (what varies
    per simulation lives in its HostResources).

    Random draws a host stage needs come from a device stage before it (the match takes
    its arrival order from ``arrive``), so the host stages draw nothing themselves.
    """
    compose(*schedule)
    names = [s.name for s in schedule]
    n = len(schedule)
    groups: list[list[int]] = []
    for i, stage in enumerate(schedule):
        if groups and not stage.host and not schedule[groups[-1][0]].host:
            groups[-1].append(i)
        else:
            groups.append([i])

    segments: list[Segment] = []
    for idx in groups:
        if schedule[idx[0]].host:
            stage = schedule[idx[0]]
            segments.append(HostSegment((stage.name,), stage.fn))
            continue
        writes = any(schedule[i].writes for i in idx)
        fast_ok = tuple(schedule[i].fast_ok for i in idx if schedule[i].fast is not None)
        if fast_ok and writes:
            raise ValueError(f"stages with a fast variant must run in a read-only segment: {[names[i] for i in idx]}")
        # Returning an unchanged input copies it, so read-only segments return no state,
        # and write segments donate theirs so updates happen in place.
        opts = {**(compiler_options() or {}), **dict(options)} or None

        def jit(fast: bool):
            fn = _segment(schedule, idx, n, writes, fast)
            return jax.jit(fn, static_argnums=0, donate_argnums=(2,) if writes else (), compiler_options=opts)

        fast = jit(True) if fast_ok else None
        segments.append(DeviceSegment(tuple(names[i] for i in idx), jit(False), writes, fast, fast_ok))
    return tuple(segments)


CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
"""XLA options for the segments on a CPU. The empty list of library fusion types keeps
XLA from handing small reductions to its YNNPACK library: a max over [500, 10] took 46 us
that way and 7 us as an ordinary fusion (the tick at seed_100k: 0.17 ms less)."""


@functools.lru_cache(maxsize=1)
def compiler_options() -> dict | None:
    """:data:`CPU_COMPILER_OPTIONS` when the default backend is the CPU and this jaxlib
    knows them (tried on a one-line function), else ``None``. On the CPU it also switches
    threefry to its unrolled lowering (:func:`systems.rng.unroll_threefry_on_cpu`)."""
    if jax.default_backend() != "cpu":
        return None
    unroll_threefry_on_cpu()
    try:
        jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(1.0).compile()
    except Exception:  # noqa: BLE001 - an option this jaxlib does not know: run without it
        return None
    return dict(CPU_COMPILER_OPTIONS)


def tick_function(schedule: tuple[Stage, ...], idx: tuple[int, ...], writes: bool = True):
    """Stages ``idx`` of ``schedule`` (all device stages) as one pure, unjitted
    ``fn(static, params, state, frame) -> (state, frame)`` (``frame``: only what the stages
    filled; no state when ``writes`` is false), each stage with its own key: what a
    device segment jits, for callers that trace it inside their own ``jit``, ``scan`` or
    ``vmap`` (``qtg.core.rollout``)."""
    if any(schedule[i].host for i in idx):
        raise ValueError(f"host stages cannot run inside a traced tick: {[schedule[i].name for i in idx if schedule[i].host]}")
    return _segment(schedule, idx, len(schedule), writes, fast=False)


def _segment(schedule, idx, n, writes, fast):
    def run(static, params, state, frame):
        keys = stage_keys(state.key, state.tick, n)
        given = frame
        for i in idx:
            stage = schedule[i]
            fn = stage.fast if fast and stage.fast is not None else stage.fn
            new_state, frame = fn(static, params, state, frame, keys[i])
            if stage.writes:
                state = new_state
        # Only what this segment added or replaced goes out (pass-throughs would be copied).
        out = frame.changes(given)
        return (state, out) if writes else out

    run.__name__ = "segment_" + "_".join(schedule[i].name for i in idx)
    return run
