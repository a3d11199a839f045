"""The metrics hook: ``metrics.jsonl`` while the run goes, ``metrics.json`` at its end.

Both files appear only once the run has ticked (a run refused or failed before its first
tick leaves neither); ``metrics.json`` is written atomically, so it is whole or absent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from qtg.core.files import write_text
from qtg.core.sim import Simulation, TickResult


class Metrics:
    """Run-time metrics. After every tick ``t`` with ``(t + 1) % every == 0`` (and at the end)
    a line of ``metrics.jsonl`` over the ticks since the last line: ticks per second
    and ms per tick over the window, orders, fills and volume per tick, mean spread and
    last mark per symbol. At the end ``metrics.json`` sums up the whole run (ms per tick
    median / p90 / p99, ticks, orders and fills per second). A failed write (disk full)
    raises OSError naming the file.
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
        self._ticked = False  # this run has ticked: metrics.json is due at its end
        self.lines: list[dict] = []  # kept when there is no run directory

    def on_start(self, sim: Simulation) -> None:
        self._t0 = time.perf_counter()
        self._ticked = False

    def on_tick(self, sim: Simulation, r: TickResult) -> None:
        self._ticked = True
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
        if self.run_dir is None:
            self.lines.append(line)
            return
        path = self.run_dir / "metrics.jsonl"
        try:
            if self._file is None:  # opened at the first line; appended to on a resume
                self.run_dir.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "a")  # noqa: SIM115 - open for the run, closed in on_end
            self._file.write(json.dumps(line) + "\n")
            self._file.flush()
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(path)) from e

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
        try:
            if self._window:
                self._emit(sim)
        finally:
            if self._file is not None:
                self._file.close()
                self._file = None
        if self.run_dir is not None and self._ticked:
            path = self.run_dir / "metrics.json"
            try:
                write_text(path, json.dumps(self.summary(), indent=2) + "\n")
            except OSError as e:
                raise OSError(e.errno, e.strerror, str(path)) from e

    def state_dict(self) -> dict:
        return {"seconds": np.array(self.seconds, np.float64), "orders": self.orders, "fills": self.fills,
                "wall": self._wall}

    def load_state_dict(self, d: dict) -> None:
        self.seconds = [float(x) for x in d["seconds"]]
        self.orders, self.fills, self._wall = int(d["orders"]), int(d["fills"]), float(d["wall"])
