"""The simulation loop: runs the compiled schedule tick by tick and calls the hooks.

The device state lives in JAX arrays; the engine is a host resource. Hooks observe each
``TickResult`` and never change the world (the simulation never imports them).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from components.orders import FillBatch, MatchResult, OrderBatch
from components.world import WorldParams, WorldState, WorldStatic
from qtg.schedule import DEFAULT_SCHEDULE, Stage, compile_schedule
from systems.match import match_orders


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
    last: np.ndarray  # i64[S] last trade price (the tick bar's close)
    high: np.ndarray  # i64[S] the tick bar's high (last price if no trade)
    low: np.ndarray  # i64[S] the tick bar's low
    volume: np.ndarray  # i64[S] shares traded in the tick
    equity_by_kind: np.ndarray  # f64[K] units
    fair: np.ndarray  # f64[S] fair value in force after the tick, units
    events: np.ndarray  # f64[len(EVENT_FIELDS), E] the tick's news record (systems/fundamentals)
    seconds: float  # wall time of the tick


class BackgroundRunaway(RuntimeError):
    """The background pool drifted into a one-sided bias (see systems.background)."""


class Hook(Protocol):
    def on_start(self, sim: "Simulation") -> None: ...
    def on_tick(self, sim: "Simulation", result: TickResult) -> None: ...
    def on_end(self, sim: "Simulation") -> None: ...


@dataclasses.dataclass
class HostResources:
    """Host-side resources of the tick: the engine and the last match (for TickResult)."""

    engine: Any
    last_match: MatchResult | None = None
    last_arrival: np.ndarray | None = None  # batch row of each order the engine saw
    last_orders: OrderBatch | None = None  # those orders, in arrival order (host arrays)


def host_match(host: HostResources, frame: dict, seed: int) -> dict:
    """The match stage: device orders -> engine -> packed fills/updates/book."""
    orders = jax.tree.map(np.asarray, frame["orders"])
    result, arrival, arrived, packed = match_orders(host.engine, orders, seed)
    host.last_match, host.last_arrival, host.last_orders = result, arrival, arrived
    frame.update(packed)
    return frame


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
        # caller's arrays stay valid.
        self.static, self.params, self.state = static, params, jax.tree.map(jnp.copy, state)
        self.host = HostResources(engine)
        self.schedule = schedule
        self.segments = compile_schedule(schedule)
        self.stage_seconds: dict[str, float] = {}

    @property
    def engine(self):
        return self.host.engine

    def step(self, profile: bool = False) -> TickResult:
        """Run one tick. With ``profile``, block after each segment and add its wall time
        to ``stage_seconds`` (keyed by the segment's stage names joined by '+')."""
        t0 = time.perf_counter()
        frame: dict = {}
        tick = None
        for seg in self.segments:
            ts = time.perf_counter()
            if seg.host:
                frame = seg.call(self.host, frame, int(frame[f"seed:{seg.names[0]}"]))
            else:
                if tick is None:
                    tick = int(self.state.tick)
                if seg.writes:
                    self.state, out = seg.call(self.static, self.params, self.state, frame)
                else:
                    out = seg.call(self.static, self.params, self.state, frame)
                frame = {**frame, **out}
                if profile:
                    jax.block_until_ready((self.state, out))
            if profile:
                label = "+".join(seg.names)
                self.stage_seconds[label] = self.stage_seconds.get(label, 0.0) + time.perf_counter() - ts
        m = jax.tree.map(np.asarray, self.state.market)
        if self.static.background is not None:
            self._check_background(tick)
        rejects = np.asarray(frame["rejects"])
        result = self.host.last_match
        return TickResult(
            tick=tick,
            submitted=int(len(self.host.last_arrival) + rejects.sum()),
            accepted=int(len(self.host.last_arrival)),
            rejects=rejects,
            status=np.asarray(frame["status"]),
            fills=result.fills,
            bid=m.bid,
            ask=m.ask,
            last=m.last,
            high=m.high,
            low=m.low,
            volume=m.volume,
            equity_by_kind=np.asarray(frame["equity_by_kind"]),
            fair=np.asarray(self.state.fundamentals.fair),
            events=np.asarray(frame["events"]),
            seconds=time.perf_counter() - t0,
        )

    def _check_background(self, tick: int) -> None:
        from systems.background import check_runaway

        # check_runaway reads only the account's scalars and positions, not the whole
        # pool state (its ring of resting ids is large at scale).
        problem = check_runaway(self.state.background, float(self.params.background.max_drift), self.static.symbols)
        if problem:
            raise BackgroundRunaway(
                f"tick {tick}: {problem}; the pool's flow is one-sided (check "
                "population.background.gain, max_bias and contrarian, or raise max_drift)"
            )

    def run(self, ticks: int, hooks: Sequence[Hook] = ()) -> None:
        """Run ``ticks`` ticks, calling every hook's on_start, on_tick and on_end."""
        for h in hooks:
            h.on_start(self)
        for _ in range(ticks):
            result = self.step()
            for h in hooks:
                h.on_tick(self, result)
        for h in hooks:
            h.on_end(self)
