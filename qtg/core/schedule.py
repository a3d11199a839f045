"""The tick as data: an ordered tuple of stages, compiled into as few jitted calls as possible.

A device stage is a pure system ``fn(static, params, state, frame, key) -> (state, frame)``;
``frame`` is a dict of the tick's intermediate outputs. A host stage is
``fn(host, frame, seed) -> frame`` and runs outside JAX (the sequential matching engine).
Consecutive device stages are folded into one jitted segment, so the default tick is two
jitted calls around one engine call. Every stage gets its own key, split from
``fold_in(state.key, state.tick)``: the same seed gives the same ticks, and a run can be
resumed from any tick without replaying the key stream.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from components.orders import MatchResult, OrderBatch
from systems.admission import admit_orders
from systems.background import settle_background
from systems.decide import commit_decisions, decide_orders
from systems.fundamentals import update_fundamentals
from systems.indicators import update_market_indicators
from systems.match import match_orders
from systems.measure import measure_equity, measure_market
from systems.observe import observe_market
from systems.rng import unroll_threefry_on_cpu
from systems.settle import settle_fills


@dataclasses.dataclass(frozen=True)
class Stage:
    """One system of the tick. ``writes=False`` marks a read-phase system: whatever state
    it returns is discarded, so the read phase cannot write."""

    name: str
    fn: Callable[..., Any]
    host: bool = False
    writes: bool = True


@dataclasses.dataclass
class HostResources:
    """Host-side resources of the tick: the engine and the last match (for TickResult)."""

    engine: Any
    last_match: MatchResult | None = None
    last_arrival: np.ndarray | None = None  # batch row of each order the engine saw
    last_orders: OrderBatch | None = None  # those orders, in arrival order (host arrays)


def _host_match(host: HostResources, frame: dict, seed: int) -> dict:
    """The match stage: device orders -> engine -> packed fills/updates/book."""
    orders = jax.tree.map(np.asarray, frame["orders"])
    result, arrival, arrived, packed = match_orders(host.engine, orders, seed)
    host.last_match, host.last_arrival, host.last_orders = result, arrival, arrived
    frame.update(packed)
    return frame


DEFAULT_SCHEDULE: tuple[Stage, ...] = (
    Stage("observe", observe_market, writes=False),
    Stage("decide", decide_orders, writes=False),
    Stage("admit", admit_orders, writes=False),
    Stage("match", _host_match, host=True),
    Stage("settle", settle_fills),
    Stage("commit", commit_decisions),  # kinds' own state and delayed orders, decided this tick
    Stage("fundamentals", update_fundamentals),  # news of tick T, seen by decisions from T+1
    Stage("background", settle_background),  # the pool's aggregate account and mood
    Stage("measure", measure_market),
    Stage("indicators", update_market_indicators),
    Stage("equity", measure_equity),
)


@dataclasses.dataclass(frozen=True)
class Segment:
    """A run of stages executed together: one jitted call, or one host stage.

    A device segment is ``call(static, params, state, frame)`` and returns the frame
    entries it added or replaced, preceded by the new state if it ``writes`` (its state
    argument is then donated: the caller must not use the old state's buffers again).
    """

    names: tuple[str, ...]
    host: bool
    call: Callable[..., Any]
    writes: bool = False


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
    not compile again. The segments are pure functions of their arguments.

    A device segment followed by host stages also emits ``frame["seed:<name>"]``, a
    uint32 seed for each of those host stages derived from that stage's key.
    """
    names = [s.name for s in schedule]
    if len(set(names)) != len(names):
        raise ValueError(f"stage names must be unique, got {names}")
    n = len(schedule)
    groups: list[list[int]] = []
    for i, stage in enumerate(schedule):
        if groups and not stage.host and not schedule[groups[-1][0]].host:
            groups[-1].append(i)
        else:
            groups.append([i])

    segments = []
    for g, idx in enumerate(groups):
        if schedule[idx[0]].host:
            stage = schedule[idx[0]]
            segments.append(Segment((stage.name,), True, stage.fn))
            continue
        # Host stages that follow this segment, up to the next device segment.
        seeds_for = []
        for later in groups[g + 1 :]:
            if not schedule[later[0]].host:
                break
            seeds_for.append(later[0])
        writes = any(schedule[i].writes for i in idx)
        fn = _segment(schedule, idx, seeds_for, n, writes)
        # Returning an unchanged input copies it, so read-only segments return no state,
        # and write segments donate theirs so updates happen in place.
        opts = {**(compiler_options() or {}), **dict(options)} or None
        call = jax.jit(fn, static_argnums=0, donate_argnums=(2,) if writes else (), compiler_options=opts)
        segments.append(Segment(tuple(names[i] for i in idx), False, call, writes))
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


def _segment(schedule, idx, seeds_for, n, writes):
    def run(static, params, state, frame):
        keys = stage_keys(state.key, state.tick, n)
        given = frame
        frame = dict(frame)
        for i in idx:
            new_state, frame = schedule[i].fn(static, params, state, frame, keys[i])
            if schedule[i].writes:
                state = new_state
        for j in seeds_for:
            frame[f"seed:{schedule[j].name}"] = jax.random.bits(keys[j], (), jnp.uint32)
        # Only what this segment added or replaced goes out (pass-throughs would be copied).
        out = {k: v for k, v in frame.items() if k not in given or v is not given[k]}
        return (state, out) if writes else out

    run.__name__ = "segment_" + "_".join(schedule[i].name for i in idx)
    return run
