"""Hooks: observers of the run. The simulation calls them; it never imports them.

Config chooses them by name (``hooks=[progress,metrics,storage]``); :data:`HOOKS` maps
each name to a factory taking a :class:`HookContext`. ``tui`` is the terminal view
(``ui=tui`` adds it). :class:`Recorder` is the run's in-memory history behind the summary
and charts; ``qtg.run`` always adds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from qtg.sim import Simulation, SimulationHook, TickResult
from systems.fundamentals import event_rows


class Recorder:
    """Keeps a per-tick history of the market and the run's totals, and hashes every fill.

    Memory is O(ticks x symbols); fills themselves are hashed, not kept. The fill hash is
    a chain of per-tick digests (``d_t = blake2b(d_{t-1} + tick t's fill columns)``), so
    :meth:`state_dict` carries it in 16 bytes and a resumed run ends on the same hash.
    """

    name = "recorder"

    FILL_FIELDS = ("taker_id", "maker_id", "taker_agent", "maker_agent", "symbol", "side", "price", "qty")
    HISTORY = ("bid", "ask", "last", "high", "low", "volume", "equity", "fair")
    """Per-tick histories of one array each (rows of :meth:`arrays`)."""

    def __init__(self) -> None:
        self.bid: list[np.ndarray] = []
        self.ask: list[np.ndarray] = []
        self.last: list[np.ndarray] = []
        self.high: list[np.ndarray] = []
        self.low: list[np.ndarray] = []
        self.volume: list[np.ndarray] = []
        self.equity: list[np.ndarray] = []
        self.fair: list[np.ndarray] = []
        self.events: list[tuple] = []  # events.csv rows (systems.fundamentals.event_rows)
        self.fills_per_tick: list[int] = []
        self.orders_per_tick: list[int] = []
        self.seconds: list[float] = []
        self.submitted = 0
        self.accepted = 0
        self.rejects: np.ndarray | None = None
        self.status: np.ndarray | None = None
        self.notional: np.ndarray | None = None  # i64[S] sum of price * qty, units
        self.trades: np.ndarray | None = None  # i64[N] fills each agent took part in
        self._digest = hashlib.blake2b(digest_size=16).digest()  # of no fills at all

    def on_start(self, sim: Simulation) -> None:
        # Totals carry on across runs of the same world (a resumed run loads them first).
        if self.notional is None:
            self.notional = np.zeros(sim.static.n_symbols, np.int64)
        if self.trades is None:
            self.trades = np.zeros(sim.static.n_agents, np.int64)

    def on_tick(self, sim: Simulation, r: TickResult) -> None:
        self.bid.append(r.bid)
        self.ask.append(r.ask)
        self.last.append(r.last)
        self.high.append(r.high)
        self.low.append(r.low)
        self.volume.append(r.volume)
        self.equity.append(r.equity_by_kind)
        self.fair.append(r.fair)
        if (r.events[0] > 0).any():
            st = sim.static
            self.events.extend(event_rows(r.events, r.tick, st.symbols, st.sectors, st.sector_of))
        self.fills_per_tick.append(len(r.fills))
        self.orders_per_tick.append(r.accepted)
        self.seconds.append(r.seconds)
        self.submitted += r.submitted
        self.accepted += r.accepted
        self.rejects = r.rejects if self.rejects is None else self.rejects + r.rejects
        self.status = r.status if self.status is None else self.status + r.status
        np.add.at(self.notional, r.fills.symbol, r.fills.price * r.fills.qty)
        n = len(self.trades)  # the background pool's virtual owners lie beyond the agents
        for who in (r.fills.taker_agent, r.fills.maker_agent):
            np.add.at(self.trades, who[who < n], 1)
        h = hashlib.blake2b(self._digest, digest_size=16)
        for name in self.FILL_FIELDS:
            h.update(np.ascontiguousarray(getattr(r.fills, name)).tobytes())
        self._digest = h.digest()

    def on_end(self, sim: Simulation) -> None:
        pass

    @property
    def fill_hash(self) -> str:
        """Digest of every fill of the run, in order: equal runs give equal hashes."""
        return self._digest.hex()

    def state_dict(self) -> dict:
        """The history and totals so far (histories stacked ``[T, ...]``), for a snapshot."""
        d: dict = {name: np.array(getattr(self, name)) for name in self.HISTORY}
        d.update(
            fills_per_tick=np.array(self.fills_per_tick, np.int64),
            orders_per_tick=np.array(self.orders_per_tick, np.int64),
            seconds=np.array(self.seconds, np.float64),
            events=[list(row) for row in self.events],
            submitted=int(self.submitted),
            accepted=int(self.accepted),
            digest=self._digest.hex(),
        )
        for name in ("rejects", "status", "notional", "trades"):
            value = getattr(self, name)
            d[name] = None if value is None else np.array(value)
        return d

    def load_state_dict(self, d: dict) -> None:
        """Continue from :meth:`state_dict` (call before ``on_start``)."""
        for name in self.HISTORY:
            setattr(self, name, list(np.array(d[name])))
        self.fills_per_tick = [int(x) for x in d["fills_per_tick"]]
        self.orders_per_tick = [int(x) for x in d["orders_per_tick"]]
        self.seconds = [float(x) for x in d["seconds"]]
        self.events = [tuple(row) for row in d["events"]]
        self.submitted, self.accepted = int(d["submitted"]), int(d["accepted"])
        self._digest = bytes.fromhex(d["digest"])
        for name in ("rejects", "status", "notional", "trades"):
            value = d[name]
            setattr(self, name, None if value is None else np.array(value))

    def arrays(self) -> dict[str, np.ndarray]:
        """History as arrays: bid/ask/last/high/low/volume [T, S] units or shares, fair
        [T, S] f64 units, equity [T, K], counts [T]."""
        return {
            "bid": np.array(self.bid),
            "ask": np.array(self.ask),
            "last": np.array(self.last),
            "high": np.array(self.high),
            "low": np.array(self.low),
            "volume": np.array(self.volume),
            "equity": np.array(self.equity),
            "fair": np.array(self.fair),
            "fills": np.array(self.fills_per_tick),
            "orders": np.array(self.orders_per_tick),
            "seconds": np.array(self.seconds),
        }


class Progress:
    """A tqdm progress bar showing the last price and fills so far. ``total`` is the run's
    last tick, so a resumed run's bar starts where the snapshot was taken."""

    name = "progress"

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.enabled = total, enabled
        self._bar = None
        self._fills = 0

    def on_start(self, sim: Simulation) -> None:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=sim.tick, unit="tick", dynamic_ncols=True,
                             mininterval=0.25)

    def on_tick(self, sim: Simulation, r: TickResult) -> None:
        if self._bar is None:
            return
        self._fills += len(r.fills)
        self._bar.update(1)
        if r.tick % 25 == 0 or self._bar.n == self.total:
            prices = " ".join(
                f"{s}={p / 10_000:.2f}" for s, p in zip(sim.static.symbols[:3], r.last[:3])
            )
            self._bar.set_postfix_str(f"{prices} fills={self._fills}", refresh=False)

    def on_end(self, sim: Simulation) -> None:
        if self._bar is not None:
            self._bar.close()


class Metrics:
    """Run-time metrics. After every tick ``t`` with ``(t + 1) % every == 0`` (and at the end)
    a line of ``metrics.jsonl`` over the ticks since the last line: ticks per second
    and ms per tick over the window, orders, fills and volume per tick, mean spread and
    last mark per symbol. At the end ``metrics.json`` sums up the whole run (ms per tick
    median / p90 / p99, ticks, orders and fills per second).
    """

    name = "metrics"

    def __init__(self, run_dir: Path | None, every: int = 100) -> None:
        self.run_dir, self.every = run_dir, every
        self.seconds: list[float] = []
        self.orders = 0
        self.fills = 0
        self._window: list[TickResult] = []
        self._t0 = 0.0
        self._wall = 0.0
        self._file = None
        self.lines: list[dict] = []  # kept when there is no run directory

    def on_start(self, sim: Simulation) -> None:
        self._t0 = time.perf_counter()
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.run_dir / "metrics.jsonl", "a")

    def on_tick(self, sim: Simulation, r: TickResult) -> None:
        self.seconds.append(r.seconds)
        self.orders += r.accepted
        self.fills += len(r.fills)
        self._window.append(r)
        if (r.tick + 1) % self.every == 0:  # lines on fixed ticks, so a resumed run keeps them
            self._emit(sim)

    def _emit(self, sim: Simulation) -> None:
        w, self._window = self._window, []
        secs = np.array([r.seconds for r in w])
        spread = np.array([np.where((r.bid > 0) & (r.ask > 0), r.ask - r.bid, 0) for r in w]) / 10_000
        line = {
            "tick": w[-1].tick,
            "ticks": len(w),
            "ticks_per_s": round(len(w) / max(secs.sum(), 1e-12), 1),
            "ms_per_tick": round(1000 * float(np.median(secs)), 3),
            "orders_per_tick": round(float(np.mean([r.accepted for r in w])), 1),
            "fills_per_tick": round(float(np.mean([len(r.fills) for r in w])), 1),
            "volume": {s: int(v) for s, v in zip(sim.static.symbols, np.sum([r.volume for r in w], axis=0))},
            "spread": {s: round(float(v), 4) for s, v in zip(sim.static.symbols, spread.mean(axis=0))},
            "mark": {s: round(float(v) / 10_000, 4) for s, v in zip(sim.static.symbols, w[-1].marks)},
        }
        if self._file is not None:
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()
        else:
            self.lines.append(line)

    def summary(self) -> dict:
        """The whole run so far: ticks, ms per tick (median, p90, p99), rates."""
        secs = np.array(self.seconds) if self.seconds else np.zeros(1)
        busy = float(secs.sum())
        return {
            "ticks": len(self.seconds),
            "wall_s": round(self._wall, 3),
            "ms_per_tick": {q: round(1000 * float(np.percentile(secs, p)), 3)
                            for q, p in (("median", 50), ("p90", 90), ("p99", 99))},
            "ticks_per_s": round(len(self.seconds) / max(busy, 1e-12), 1),
            "orders_per_s": round(self.orders / max(busy, 1e-12), 1),
            "fills_per_s": round(self.fills / max(busy, 1e-12), 1),
        }

    def on_end(self, sim: Simulation) -> None:
        self._wall += time.perf_counter() - self._t0
        if self._window:
            self._emit(sim)
        if self._file is not None:
            self._file.close()
            self._file = None
            (self.run_dir / "metrics.json").write_text(json.dumps(self.summary(), indent=2) + "\n")

    def state_dict(self) -> dict:
        return {"seconds": np.array(self.seconds, np.float64), "orders": self.orders, "fills": self.fills,
                "wall": self._wall}

    def load_state_dict(self, d: dict) -> None:
        self.seconds = [float(x) for x in d["seconds"]]
        self.orders, self.fills, self._wall = int(d["orders"]), int(d["fills"]), float(d["wall"])


@dataclasses.dataclass
class HookContext:
    """What a hook factory may use: the typed config and the run directory (None when the
    run has none, e.g. in a notebook)."""

    cfg: Any  # qtg.config.Config
    run_dir: Path | None


def _progress(ctx: HookContext) -> SimulationHook:
    return Progress(ctx.cfg.run.ticks)


def _metrics(ctx: HookContext) -> SimulationHook:
    return Metrics(ctx.run_dir, ctx.cfg.metrics.every)


def _storage(ctx: HookContext) -> SimulationHook:
    from qtg.report import config_dict
    from qtg.storage import Storage

    if ctx.run_dir is None:
        raise ValueError("the storage hook needs a run directory")
    return Storage(ctx.run_dir / ctx.cfg.storage.file, ctx.cfg.storage, config_dict(ctx.cfg), ctx.cfg.seed)


def _tui(ctx: HookContext) -> SimulationHook:
    from qtg.tui import TuiHook

    return TuiHook(ctx.cfg.ui)


HOOKS: dict[str, Callable[[HookContext], SimulationHook]] = {
    "progress": _progress,
    "metrics": _metrics,
    "storage": _storage,
    "tui": _tui,
}
"""Hook factories by config name."""


def make_hooks(names: list[str], ctx: HookContext) -> list[SimulationHook]:
    """The hooks called ``names``, in that order (unknown names raise ValueError)."""
    unknown = [n for n in names if n not in HOOKS]
    if unknown:
        raise ValueError(f"unknown hook(s) {unknown}; allowed: {', '.join(sorted(HOOKS))}")
    return [HOOKS[n](ctx) for n in names]
