"""The terminal view's hook (simulation thread): a per-tick ring of prices and the news,
published at most ``ui.fps`` times a second as a :class:`Frame` into a latest-wins slot."""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from components.orders import Depth
from qtg.core.config import UIConfig
from qtg.core.news import event_rows
from qtg.core.sim import Simulation, TickResult
from systems.risk import kind_risk

RISK_HZ = 1.0
"""Risk statistics are refreshed at most this often: the VaR needs an order statistic of
every agent's return window (O(N W) on the device), and they move slowly."""

NEWS_KEPT = 200
"""News rows the hook keeps (newest last)."""


def _decimals(tick_units: int) -> int:
    """Decimals that show every price on a grid of ``tick_units`` (at least 2)."""
    d, t = 4, int(tick_units)
    while d > 2 and t % 10 == 0:
        t //= 10
        d -= 1
    return d


@dataclasses.dataclass(frozen=True)
class Frame:
    """One published view of the world. Host arrays unless noted; prices in units."""

    version: int  # increases with every publish
    tick: int  # ticks the world has run (the next tick's number)
    history_ticks: np.ndarray  # i64[h] tick of each history row, oldest first (h <= ui.history)
    last: np.ndarray  # i64[h, S] last trade price
    fair: np.ndarray  # f64[h, S] fair value
    bid: np.ndarray  # i64[h, S] best bid (0 = none)
    ask: np.ndarray  # i64[h, S] best ask (0 = none)
    depth: Depth  # [S, L] book levels, best first
    equity: np.ndarray  # f64[K] equity per kind now, units
    equity0: np.ndarray  # f64[K] equity per kind at the world's start, units
    risk: dict[str, Any]  # kind_risk's [K] arrays (device arrays: read them off the sim thread)
    news: tuple[tuple, ...]  # event_rows, newest first
    news_total: int  # events seen since on_start
    rate: float  # ticks per second (wall clock, smoothed)
    wall: float  # time.perf_counter() of the publish


class TuiHook:
    """Observes the run for the terminal view (see the module doc). Cheap per tick: a few
    [S] copies into a ring; the fuller frame is built at most ``ui.fps`` times a second."""

    name = "tui"

    def __init__(self, ui: UIConfig, clock: Callable[[], float] = time.perf_counter) -> None:
        self.ui, self.clock = ui, clock
        self.history = max(2, int(ui.history))
        self.interval = 1.0 / max(float(ui.fps), 0.1)
        self.symbols: tuple[str, ...] = ()
        self.kinds: tuple[str, ...] = ()
        self.agents = np.zeros(0, np.int64)  # i64[K]
        self.decimals: tuple[int, ...] = ()  # per symbol
        self._lock = threading.Lock()
        self._latest: Frame | None = None
        self._version = 0
        self.started = self.ended = False

    # -- simulation thread -------------------------------------------------------------

    def on_start(self, sim: Simulation) -> None:
        st = sim.static
        self.symbols = tuple(st.symbols)
        self.kinds = tuple(k.name for k in st.kinds)
        self.agents = np.array([k.count for k in st.kinds], np.int64)
        self.decimals = tuple(_decimals(t) for t in np.asarray(sim.params.tick_size))
        kind_of = np.full(st.n_agents, len(st.kinds), np.int32)  # rows outside a kind: dropped
        for i, k in enumerate(st.kinds):
            kind_of[k.start : k.stop] = i
        self._kind_of = jnp.asarray(kind_of)
        risk = sim.state.risk
        eq, eq0 = np.asarray(risk.equity), np.asarray(risk.equity0)
        self._equity0 = np.array([eq0[k.start : k.stop].sum() for k in st.kinds], np.float64)
        self._equity = np.array([eq[k.start : k.stop].sum() for k in st.kinds], np.float64)
        h, s = self.history, st.n_symbols
        self._ticks = np.zeros(h, np.int64)
        self._last = np.zeros((h, s), np.int64)
        self._fair = np.zeros((h, s), np.float64)
        self._bid = np.zeros((h, s), np.int64)
        self._ask = np.zeros((h, s), np.int64)
        self._n = 0  # ticks seen since on_start (ring writes)
        self._news: collections.deque = collections.deque(maxlen=NEWS_KEPT)
        self._news_total = 0
        self._news_shown: tuple[int, tuple] = (-1, ())
        self._published_n = -1
        self._rate = 0.0
        self._rate_mark = (self.clock(), 0)
        self._last_publish = -np.inf
        self._risk: dict[str, Any] = {}
        self._risk_at = -np.inf
        self.started, self.ended = True, False
        self.publish(sim)

    def on_tick(self, sim: Simulation, r: TickResult) -> None:
        i = self._n % self.history
        self._ticks[i] = r.tick
        self._last[i] = r.last
        self._fair[i] = r.fair
        self._bid[i] = r.bid
        self._ask[i] = r.ask
        self._equity = r.equity_by_kind
        self._n += 1
        if r.events.shape[1] and (r.events[0] > 0).any():
            st = sim.static
            rows = event_rows(r.events, r.tick, st.symbols, st.sectors, st.sector_of)
            self._news.extend(rows)
            self._news_total += len(rows)
        if self.clock() - self._last_publish >= self.interval:
            self.publish(sim, full=False)

    def on_end(self, sim: Simulation) -> None:
        if self.started:
            self.publish(sim)
        self.ended = True

    def publish(self, sim: Simulation, full: bool = True) -> None:
        """Build a frame from the ring, the engine and the device state and make it the
        latest. Simulation thread only (it reads the engine). No-op when nothing is new.
        Risk statistics are refreshed at most ``RISK_HZ`` times a second unless ``full``."""
        if not self.started or self._n == self._published_n:
            return
        now = self.clock()
        t0, n0 = self._rate_mark
        if now > t0 and self._n > n0:
            inst = (self._n - n0) / (now - t0)
            self._rate = inst if self._rate == 0.0 else 0.5 * self._rate + 0.5 * inst
        self._rate_mark = (now, self._n)
        h = min(self._n, self.history)
        rows = np.arange(self._n - h, self._n) % self.history
        if now - self._risk_at >= 1.0 / RISK_HZ or full:
            # Dispatched, not awaited: the screen thread reads the [K] results.
            self._risk = kind_risk(sim.static.risk, sim.state.risk, self._kind_of, len(self.kinds))
            self._risk_at = now
        frame = Frame(
            version=self._version + 1,
            tick=int(self._ticks[rows[-1]]) + 1 if h else sim.tick,
            history_ticks=self._ticks[rows],
            last=self._last[rows],
            fair=self._fair[rows],
            bid=self._bid[rows],
            ask=self._ask[rows],
            depth=sim.engine.depth(int(self.ui.depth)),
            equity=np.array(self._equity, np.float64),
            equity0=self._equity0,
            risk=self._risk,
            news=self._news_view(),
            news_total=self._news_total,
            rate=self._rate,
            wall=now,
        )
        with self._lock:
            self._version = frame.version
            self._latest = frame
        self._published_n = self._n
        self._last_publish = now

    def _news_view(self) -> tuple[tuple, ...]:
        """The kept news, newest first (the same tuple until news arrives)."""
        if self._news_shown[0] != self._news_total:
            self._news_shown = (self._news_total, tuple(reversed(self._news)))
        return self._news_shown[1]

    # -- any thread ------------------------------------------------------------------

    def latest(self) -> Frame | None:
        """The newest frame (None before ``on_start``)."""
        with self._lock:
            return self._latest

    @property
    def ticks_seen(self) -> int:
        """Ticks observed since the last ``on_start``."""
        return self._n if self.started else 0

    def pause_rate(self) -> None:
        """Restart the ticks-per-second window (after a pause, so it is not averaged in)."""
        self._rate_mark = (self.clock(), self._n)
