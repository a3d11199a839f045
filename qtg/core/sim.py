"""The simulation loop: runs the compiled schedule tick by tick and calls the hooks.

The device state lives in JAX arrays; the engine is a host resource. Hooks observe each
``TickResult`` and never change the world (the simulation never imports them: they are
chosen in config and built by :mod:`qtg.hooks`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from typing import Any, Callable, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from components.frame import Frame
from components.orders import FillBatch, OrderBatch, Outcomes
from components.world import WorldParams, WorldState, WorldStatic
from qtg.core.schedule import DEFAULT_SCHEDULE, HostResources, Stage, compile_schedule, compiler_options
from systems.match import unpack_fills

log = logging.getLogger("qtg")


@dataclasses.dataclass
class TickResult:
    """What one tick did. Host NumPy arrays; prices in units, quantities in shares."""

    tick: int
    submitted: int  # orders the agents sent (before validation)
    accepted: int  # orders that reached the engine
    rejects: np.ndarray  # i64[len(Reason)] validation refusals per reason
    status: np.ndarray  # i64[len(Status)] engine outcomes per status
    fills: FillBatch  # in the order they happened
    bid: np.ndarray  # i64[S] best bid after the tick (0 = none)
    ask: np.ndarray  # i64[S]
    bid_qty: np.ndarray  # i64[S] shares at the best bid
    ask_qty: np.ndarray  # i64[S] shares at the best ask
    last: np.ndarray  # i64[S] last trade price (the tick bar's close)
    high: np.ndarray  # i64[S] the tick bar's high (last price if no trade)
    low: np.ndarray  # i64[S] the tick bar's low
    volume: np.ndarray  # i64[S] shares traded in the tick
    marks: np.ndarray  # f64[S] mark price after the tick: mid if both sides quote, else last
    equity_by_kind: np.ndarray  # f64[K] units
    fair: np.ndarray  # f64[S] fair value in force after the tick, units
    events: np.ndarray  # f64[len(EVENT_FIELDS), E] the tick's news record (systems/fundamentals)
    orders: OrderBatch  # [A] the orders the engine saw, in arrival order (host arrays)
    outcomes: Outcomes  # [A] what happened to each of them
    seconds: float  # wall time of the tick


class BackgroundRunaway(RuntimeError):
    """The background pool drifted into a one-sided bias (see systems.background)."""


class SimulationHook(Protocol):
    """An observer of the run. ``on_start`` before the first tick of a :meth:`Simulation.run`
    (also when the run resumes from a snapshot), ``on_tick`` after every tick with what it
    did, ``on_end`` once when the run stops for any reason (its last tick, a stop request,
    Ctrl-C or an error), so a hook can always flush what it holds.

    A hook must not change the world. Hooks that keep a cursor across ticks (a storage
    writer's open candles, a recorder's history) also offer ``name`` (a unique string),
    ``state_dict() -> dict`` (NumPy arrays, numbers, strings and nested dicts thereof) and
    ``load_state_dict(d)`` (called before ``on_start``), so a snapshot can carry them.
    """

    def on_start(self, sim: "Simulation") -> None: ...
    def on_tick(self, sim: "Simulation", result: TickResult) -> None: ...
    def on_end(self, sim: "Simulation") -> None: ...


Gate = Callable[["Simulation"], bool]
"""Called before each tick of :meth:`Simulation.run`: ``False`` stops the run at this tick
boundary. It may block (a paused viewer) or sleep (a speed limit)."""


class Simulation:
    """Owns the world (static, params, device state), the engine and the compiled tick."""

    def __init__(
        self,
        static: WorldStatic,
        params: WorldParams,
        state: WorldState,
        engine: Any,
        schedule: tuple[Stage, ...] = DEFAULT_SCHEDULE,
    ) -> None:
        # Write segments donate the state they are given: work on a private copy so the
        # caller's arrays stay valid. Params and state are committed to the device, as a
        # jitted call's outputs are, so the tick compiles once per world's shapes whether
        # they were built here or loaded from a snapshot (else a resumed run in a process
        # that ran the same world would compile its tick again).
        self.device = jax.tree.leaves(state)[0].sharding
        self.static = static
        self.params, self.state = jax.device_put((params, jax.tree.map(jnp.copy, state)), self.device)
        self.host = HostResources(engine)
        self.schedule = schedule
        self.segments = compile_schedule(schedule)
        self.stage_seconds: dict[str, float] = {}
        self.stop_reason: str | None = None  # why the last run() ended before its last tick
        self._max_drift: float | None = None  # params.background.max_drift on the host
        self._stop = threading.Event()

    @property
    def engine(self):
        return self.host.engine

    @property
    def fast_paths(self) -> bool:
        """Whether segments try their stages' fast variants first (``Stage.fast``, such as
        admission assuming every borrow pool fits); ``False`` runs the exact ones only."""
        return self.host.fast_paths

    @fast_paths.setter
    def fast_paths(self, on: bool) -> None:
        self.host.fast_paths = on

    @property
    def exact_reruns(self) -> int:
        """Segment runs repeated with the exact variants because a fast one was wrong (a
        borrow pool overflowed)."""
        return self.host.exact_reruns

    @property
    def tick(self) -> int:
        """Ticks run so far (the next tick's number)."""
        return int(self.state.tick)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Ask :meth:`run` to stop at the next tick boundary (thread-safe)."""
        self.stop_reason = reason
        self._stop.set()

    def step(self, profile: bool = False) -> TickResult:
        """Run one tick: the compiled segments in order. With ``profile``, block after
        each segment and add its wall time to ``stage_seconds`` (keyed by the segment's
        stage names joined by '+')."""
        t0 = time.perf_counter()
        tick = int(self.state.tick)
        frame = Frame()
        for seg in self.segments:
            ts = time.perf_counter()
            self.state, frame = seg(self.static, self.params, self.state, frame, self.host)
            if profile:
                jax.block_until_ready((self.state, frame))
                label = "+".join(seg.names)
                self.stage_seconds[label] = self.stage_seconds.get(label, 0.0) + time.perf_counter() - ts
        m = jax.tree.map(np.asarray, self.state.market)
        if self.static.background is not None:
            self._check_background(tick)
        rejects = np.asarray(frame.rejects)
        result = self.host.last_match
        return TickResult(
            tick=tick,
            submitted=int(len(self.host.last_arrival) + rejects.sum()),
            accepted=int(len(self.host.last_arrival)),
            rejects=rejects,
            status=np.asarray(frame.status),
            fills=result.fills,
            bid=m.bid,
            ask=m.ask,
            bid_qty=m.bid_qty,
            ask_qty=m.ask_qty,
            last=m.last,
            high=m.high,
            low=m.low,
            volume=m.volume,
            marks=np.asarray(frame.marks),
            equity_by_kind=np.asarray(frame.equity_by_kind),
            fair=np.asarray(self.state.fundamentals.fair),
            events=np.asarray(frame.events),
            orders=self.host.last_orders,
            outcomes=result.outcomes,
            seconds=time.perf_counter() - t0,
        )

    def _check_background(self, tick: int) -> None:
        from systems.background import check_runaway

        # check_runaway reads only the account's scalars and positions, not the whole
        # pool state (its ring of resting ids is large at scale).
        if self._max_drift is None:
            self._max_drift = float(self.params.background.max_drift)
        problem = check_runaway(self.state.background, self._max_drift, self.static.symbols)
        if problem:
            raise BackgroundRunaway(
                f"tick {tick}: {problem}; the pool's flow is one-sided (check "
                "population.background.gain, max_bias and contrarian, or raise max_drift)"
            )

    def run(self, ticks: int, hooks: Sequence[SimulationHook] = (), gate: Gate | None = None) -> int:
        """Run up to ``ticks`` ticks, calling every hook's on_start, on_tick and on_end.

        Stops early, at a tick boundary, when ``gate`` returns ``False`` or when
        :meth:`request_stop` is called (from a hook, another thread or a signal handler:
        ``python -m qtg.run`` turns Ctrl-C and SIGTERM into a stop request; the
        simulation installs no handler itself); :attr:`stop_reason` then says why. The
        hooks' ``on_end`` runs however the run ends, errors included, so what they
        accepted is flushed; when the run fails, its error is the one raised (an
        ``on_end`` failing as well, e.g. on the same full disk, is logged, not raised in
        its place). Returns the number of ticks run.
        """
        self._stop.clear()
        self.stop_reason = None
        done = 0
        started: list[SimulationHook] = []
        try:
            for h in hooks:
                h.on_start(self)
                started.append(h)
            while done < ticks and not self._stop.is_set():
                if gate is not None and not gate(self):
                    self.stop_reason = self.stop_reason or "stopped"
                    break
                if self._stop.is_set():
                    break
                result = self.step()
                done += 1
                for h in hooks:
                    h.on_tick(self, result)
        except BaseException:
            _end_all(started, self, failing=True)
            raise
        _end_all(started, self)
        return done


class DeviceSimulation(Simulation):
    """The run with the whole tick on the device (``engine=device``): each tick is one
    jitted call of :func:`qtg.core.rollout.step_record` (decide, admit, match, settle and
    measure, no host callback), and only its record comes back to build the
    :class:`TickResult` the hooks read, so a run trades and reports exactly as the host
    loop does with ``engine=fast``. The books live in the engine
    (:class:`systems.matching.device.DeviceEngine`), which snapshots, the summary and
    the viewer read as they read any engine; :attr:`state` is the world without them.
    """

    def __init__(self, static: WorldStatic, params: WorldParams, state: WorldState, engine: Any,
                 schedule: tuple[Stage, ...] = DEFAULT_SCHEDULE) -> None:
        if getattr(engine, "name", None) != "device" or schedule is not DEFAULT_SCHEDULE:
            raise ValueError("DeviceSimulation runs the default tick with a device engine (engine=device)")
        super().__init__(static, params, state, engine, schedule)
        # The books committed too, like params and state (Simulation): a first call with
        # arrays not committed would compile the tick a second time on the next call.
        engine.place(self.device)
        self._step = _device_step()

    def step(self, profile: bool = False) -> TickResult:
        """Run one tick on the device. With ``profile``, its wall time is added to
        ``stage_seconds["device tick"]``."""
        t0 = time.perf_counter()
        engine = self.host.engine
        state = self.state.replace(books=engine.books)
        new, rec = self._step(self.static, self.params, state, int(engine.stp))
        rec = jax.device_get(rec)
        self.state = new.replace(books=None)
        fills = unpack_fills(rec.fills, rec.fill_ids)
        n = int(rec.outputs.arrivals)
        engine.adopt(new.books, n, len(fills), int(rec.outputs.book_full))
        if profile:
            self.stage_seconds["device tick"] = self.stage_seconds.get("device tick", 0.0) + time.perf_counter() - t0
        if self.static.background is not None:
            self._check_background(int(rec.outputs.tick))
        orders = jax.tree.map(lambda a: a[:n], rec.orders)  # the arrivals; padding rows after them
        self.host.last_orders = orders
        o = rec.outputs
        return TickResult(
            tick=int(o.tick), submitted=int(n + o.rejects.sum()), accepted=n, rejects=o.rejects, status=o.status,
            fills=fills, bid=o.bid, ask=o.ask, bid_qty=rec.bid_qty, ask_qty=rec.ask_qty, last=o.last, high=o.high,
            low=o.low, volume=o.volume, marks=o.marks, equity_by_kind=o.equity_by_kind, fair=rec.fair,
            events=rec.events, orders=orders, outcomes=jax.tree.map(lambda a: a[:n], rec.outcomes),
            seconds=time.perf_counter() - t0,
        )


@functools.lru_cache(maxsize=1)
def _device_step():
    """:func:`qtg.core.rollout.step_record`, jitted once per process (every
    :class:`DeviceSimulation` of a world's shapes shares its compilation), with the
    host segments' CPU options (:func:`qtg.core.schedule.compiler_options`)."""
    from qtg.core.rollout import step_record

    return jax.jit(step_record, static_argnums=(0, 3), donate_argnums=(2,), compiler_options=compiler_options())


def make_simulation(static: WorldStatic, params: WorldParams, state: WorldState, engine: Any) -> Simulation:
    """The run for ``engine``: the whole tick on the device for the device engine
    (:class:`DeviceSimulation`), the host loop for the others."""
    cls = DeviceSimulation if getattr(engine, "name", None) == "device" else Simulation
    return cls(static, params, state, engine)


def _end_all(hooks: Sequence[SimulationHook], sim: Simulation, failing: bool = False) -> None:
    """Every started hook's on_end, even when an earlier one fails. The first on_end error
    is raised after all have run, unless the run is already ``failing``: then its error
    stays the one that propagates, and on_end errors are only logged (INFO: one failure,
    such as a full disk, often fails several hooks)."""
    error = None
    for h in hooks:
        try:
            h.on_end(sim)
        except BaseException as e:  # noqa: BLE001 - re-raised or logged below
            if failing:  # in run.log; the console shows the run's own error
                log.info("%s.on_end failed as well while the run was failing: %s: %s",
                         type(h).__name__, type(e).__name__, e)
            error = error or e
    if error is not None and not failing:
        raise error
