"""The live terminal view (``python -m qtg.run ui=tui``): a Textual app over a running world.

Three pieces, each on its own side of the thread boundary:

* :class:`TuiHook` (simulation thread) keeps a light per-tick ring of prices and the news,
  and at most ``ui.fps`` times per second (wall clock) publishes a :class:`Frame` (book
  depth, P&L and risk per strategy kind, the history) into a latest-wins slot. The engine
  is not thread-safe, so the book is read here, inside ``on_tick``.
* :class:`RunControl` (both threads) is the gate of :meth:`qtg.core.sim.Simulation.run`: pause,
  single steps, the speed limit and quit. The screen writes it; the simulation waits on it.
* :class:`QtgApp` (main thread) runs the simulation in a worker thread and redraws at a
  steady ``ui.fps`` from the latest frame. It never waits on the simulation.

Keys: space pause/resume, ``s`` step one tick, ``+``/``-`` speed limit, ``1``-``9`` and the
arrows pick the symbol, ``w`` snapshot, ``q`` quit (stops at the next tick boundary, waits for
the hooks' ``on_end``). Prices on screen are in currency (units / 10,000).

Panels are drawn through Textual's line API from rows of styled runs, and only changed rows
are repainted: a frame costs the main thread a few milliseconds (``qtg.bench.tui``
measures the slowdown). ``python -m qtg.hooks.tui docs/tui.svg [overrides] --ticks N`` saves a
screenshot.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from typing import Any, Awaitable, Callable, Sequence

import jax.numpy as jnp
import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.geometry import Size
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Tab, Tabs

from components.money import SCALE
from components.orders import Depth
from qtg.core.config import UIConfig
from qtg.core.news import event_rows
from qtg.core.sim import Simulation, SimulationHook, TickResult
from systems.risk import kind_risk

SPEED_LADDER: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 0)
"""Speed limits in ticks per second that ``+`` and ``-`` step through; 0 = unlimited (top)."""

BOOK_HZ = 5.0
"""The book panel is redrawn at most this often (a faster book is a blur to the eye)."""

TABLE_HZ = 2.0
"""The P&L, risk and news panels change slowly: redraw them at most this often."""

RISK_HZ = 1.0
"""Risk statistics are refreshed at most this often: the VaR needs an order statistic of
every agent's return window (O(N W) on the device), and they move slowly."""

NEWS_KEPT = 200
"""News rows the hook keeps (newest last)."""

# Tokyo Night, the app's theme: one palette for every panel.
GREEN, RED, BLUE, YELLOW = "#9ece6a", "#f7768e", "#7aa2f7", "#e0af68"
CYAN, ORANGE, MUTED, FG = "#7dcfff", "#ff9e64", "#565f89", "#a9b1d6"

log = logging.getLogger("qtg")


# --------------------------------------------------------------------------- formatting


def compact(x: float, signed: bool = False) -> str:
    """A currency amount in at most ~7 characters: 1,234.56 / 12.3k / 4.56M / 1.23B."""
    sign = "+" if signed and x > 0 else ""
    a = abs(x)
    for limit, unit, suffix in ((1e9, 1e9, "B"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if a >= limit:
            return f"{sign}{x / unit:.2f}{suffix}"
    return f"{sign}{x:,.2f}"


def speed_label(speed: float) -> str:
    """``∞`` for no limit, else ticks per second."""
    return "∞" if speed <= 0 else f"{speed:g}/s"


def faster(speed: float) -> float:
    """The next rung up the speed ladder (unlimited stays unlimited)."""
    if speed <= 0:
        return 0.0
    return next((s for s in SPEED_LADDER if s <= 0 or s > speed), 0.0)


def slower(speed: float) -> float:
    """The next rung down the speed ladder (1 tick/s is the slowest)."""
    limited = [s for s in SPEED_LADDER if s > 0]
    if speed <= 0:
        return limited[-1]
    return next((s for s in reversed(limited) if s < speed), limited[0])


def _decimals(tick_units: int) -> int:
    """Decimals that show every price on a grid of ``tick_units`` (at least 2)."""
    d, t = 4, int(tick_units)
    while d > 2 and t % 10 == 0:
        t //= 10
        d -= 1
    return d


# --------------------------------------------------------------------------- the hook


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


# --------------------------------------------------------------------------- run control


class RunControl:
    """Pause, single steps, speed limit and quit, shared by the screen and the simulation.

    :meth:`gate` is the simulation's gate (called before each tick): it blocks while
    paused, paces ticks to ``speed`` per second (0 = no limit) and returns False once
    :meth:`quit` was called. Every other method is called by the screen. Thread-safe.
    """

    def __init__(self, paused: bool = False, speed: float = 0.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self._cond = threading.Condition()
        self.paused, self.speed, self.quitting = bool(paused), max(float(speed), 0.0), False
        self.clock = clock
        self._steps = 0
        self._due: float | None = None  # when the next paced tick may run

    def toggle_pause(self) -> bool:
        """Pause or resume; returns whether it is now paused."""
        with self._cond:
            self.paused = not self.paused
            self._steps, self._due = 0, None
            self._cond.notify_all()
            return self.paused

    def pause(self) -> None:
        with self._cond:
            self.paused = True
            self._cond.notify_all()

    def step(self) -> None:
        """Let one more tick run while paused."""
        with self._cond:
            if self.paused:
                self._steps += 1
                self._cond.notify_all()

    def set_speed(self, speed: float) -> None:
        with self._cond:
            self.speed, self._due = max(float(speed), 0.0), None
            self._cond.notify_all()

    def quit(self) -> None:
        with self._cond:
            self.quitting = True
            self._cond.notify_all()

    def gate(self, on_pause: Callable[[], None] | None = None) -> bool:
        """Wait until the next tick may run; False to stop the run. ``on_pause`` runs
        (outside the lock) once before blocking for a pause, e.g. to publish the frame of
        the tick just run."""
        flushed = False
        while True:
            with self._cond:
                if self.quitting:
                    return False
                if self.paused:
                    if self._steps:
                        self._steps -= 1
                        return True
                    if flushed or on_pause is None:
                        self._cond.wait()
                        continue
                elif self.speed <= 0:
                    return True
                else:
                    period, now = 1.0 / self.speed, self.clock()
                    if self._due is None or now - self._due > period:
                        self._due = now  # no burst to catch up after a slow stretch
                    if now >= self._due:
                        self._due += period
                        return True
                    self._cond.wait(self._due - now)
                    continue
            on_pause()
            flushed = True


# --------------------------------------------------------------------------- rendering

_BRAILLE = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], np.int64)


def _column_spans(y: np.ndarray, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Low and high value drawn in each of ``cols`` dot columns for the series ``y`` (no
    NaN): the close of the points that fall in the column (resampled when there are
    fewer points than columns), joined to the previous column's so the line is unbroken."""
    n = len(y)
    if n >= cols:
        ends = (np.arange(1, cols + 1) * n) // cols - 1  # last point of each column
        close = y[ends]
    else:
        close = np.interp(np.arange(cols), np.linspace(0, cols - 1, n), y)
    lo, hi = close.copy(), close.copy()
    lo[1:] = np.minimum(close[1:], close[:-1])
    hi[1:] = np.maximum(close[1:], close[:-1])
    return lo, hi


def _braille(lo: np.ndarray, hi: np.ndarray, ymin: float, ymax: float, rows: int) -> np.ndarray:
    """Braille dot bits i64[rows, cols/2] of vertical spans [lo, hi] per dot column."""
    h4 = rows * 4
    scale = (h4 - 1) / (ymax - ymin)
    top = np.clip(np.rint((ymax - hi) * scale), 0, h4 - 1).astype(np.int64)
    bottom = np.clip(np.rint((ymax - lo) * scale), 0, h4 - 1).astype(np.int64)
    r = np.arange(h4)[:, None]
    grid = (r >= top[None, :]) & (r <= bottom[None, :])  # bool[h4, cols]
    g = grid.reshape(rows, 4, -1, 2)
    return (g * _BRAILLE[None, :, None, :]).sum(axis=(1, 3))


def _clean(y: np.ndarray) -> np.ndarray:
    """Currency values with non-positive entries (no price yet) carried forward."""
    y = np.asarray(y, np.float64) / SCALE
    bad = ~(y > 0)
    if bad.all():
        return y[:0]
    if bad.any():
        idx = np.where(bad, 0, np.arange(len(y)))
        np.maximum.accumulate(idx, out=idx)
        y = y[idx]
        y[: np.argmax(~bad)] = y[np.argmax(~bad)]
    return y


Run = tuple[str, "str | None"]
"""A piece of a row: its text and its style (a Rich style string such as ``"bold #9ece6a"``;
None: the panel's own colours)."""
Row = tuple[Run, ...]
"""One line of a panel."""


def row_text(row: Row) -> str:
    """The plain text of a row."""
    return "".join(text for text, _ in row)


def rows_text(rows: Sequence[Row]) -> str:
    """The plain text of a panel's rows, one line each."""
    return "\n".join(row_text(r) for r in rows)


def _runs(text: str, kinds: np.ndarray, styles: Sequence[str | None]) -> list[Run]:
    """``text`` cut where ``kinds`` (one int per character) changes; run i takes
    ``styles[kinds[i]]``."""
    if not len(text):
        return []
    cuts = [0, *(np.flatnonzero(np.diff(kinds)) + 1).tolist(), len(text)]
    return [(text[a:b], styles[kinds[a]]) for a, b in zip(cuts[:-1], cuts[1:])]


def chart_rows(width: int, height: int, ticks: np.ndarray, price: np.ndarray, fair: np.ndarray,
               decimals: int = 2) -> list[Row]:
    """A braille line chart of ``price`` (blue) and ``fair`` (yellow), both [h] units, with
    a price axis on the left and a tick axis below, in ``width`` x ``height`` cells."""
    p, f = _clean(price), _clean(fair)
    if width < 12 or height < 3 or len(p) == 0:
        return [(("waiting for the first tick…", MUTED),)]
    both = np.concatenate([p, f]) if len(f) else p
    ymin, ymax = float(both.min()), float(both.max())
    pad = max((ymax - ymin) * 0.06, 10.0 ** -decimals, ymax * 5e-4)
    ymin, ymax = ymin - pad, ymax + pad
    rows = height - 1
    label_w = max(len(f"{ymax:,.{decimals}f}"), len(f"{ymin:,.{decimals}f}")) + 1
    cols = width - label_w - 1
    if cols < 4:
        return [((f"{p[-1]:,.{decimals}f}", BLUE),)]
    price_bits = _braille(*_column_spans(p, cols * 2), ymin, ymax, rows)
    fair_bits = _braille(*_column_spans(f, cols * 2), ymin, ymax, rows) if len(f) else 0 * price_bits
    kinds = np.where(price_bits > 0, 1, np.where(fair_bits > 0, 2, 0))  # [rows, cols]
    codes = np.where(kinds > 0, 0x2800 + (price_bits | fair_bits), 0x20)
    # A blank looks the same in any colour: give it its left neighbour's (or, leading, the
    # first mark's) so that a row is a few long runs, which Textual draws much faster.
    idx = np.where(kinds > 0, np.arange(cols)[None, :], 0)
    np.maximum.accumulate(idx, axis=1, out=idx)
    first = np.argmax(kinds > 0, axis=1)
    idx = np.where(idx < first[:, None], first[:, None], idx)
    kinds = np.take_along_axis(kinds, idx, axis=1)
    label_every = max(2, rows // 6)
    styles = (None, BLUE, YELLOW)
    out: list[Row] = []
    for r in range(rows):
        if r % label_every == 0 or r == rows - 1:
            y = ymax - (r * 4 + 1.5) / (rows * 4 - 1) * (ymax - ymin)
            axis = (f"{y:>{label_w - 1},.{decimals}f} ┤", MUTED)
        else:
            axis = (" " * label_w + "│", MUTED)
        out.append((axis, *_runs("".join(map(chr, codes[r])), kinds[r], styles)))
    t0, t1 = int(ticks[0]), int(ticks[-1])
    left, right = f"t {t0:,}", f"t {t1:,}"
    mid = f"t {(t0 + t1) // 2:,}" if cols > len(left) + len(right) + 20 else ""
    gap = cols - len(left) - len(right) - len(mid)
    line = left + " " * (gap // 2) + mid + " " * (gap - gap // 2) + right if gap > 0 else right.rjust(cols)
    out.append(((" " * label_w + "└" + line[:cols], MUTED),))
    return out


def _bar(fraction: float, width: int) -> str:
    """A horizontal bar of ``fraction`` of ``width`` cells, in eighths."""
    eighths = int(round(max(0.0, min(1.0, fraction)) * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")


def book_rows(depth: Depth, s: int, width: int, height: int, decimals: int = 2) -> list[Row]:
    """Symbol ``s``'s book: asks (worst at the top) over bids, each level's price, size and
    a size bar; the spread in between. As many levels as fit in ``height`` lines."""
    bp, bq = depth.bid_price[s], depth.bid_qty[s]
    ap, aq = depth.ask_price[s], depth.ask_qty[s]
    levels = max(1, min(len(bp), (height - 2) // 2))
    pw = max(8, len(f"{max(int(ap.max()), int(bp.max())) / SCALE:,.{decimals}f}"))
    qw = 9
    bar_w = max(1, width - pw - qw - 3)
    shown = np.concatenate([aq[:levels], bq[:levels]])
    top = max(int(shown.max()), 1) if len(shown) else 1
    out: list[Row] = [((f"{'price':>{pw}} {'size':>{qw}}  depth", MUTED),)]

    def level(price: int, qty: int, color: str) -> Row:
        if qty <= 0:
            return ((f"{'·':>{pw}}", MUTED),)
        return ((f"{price / SCALE:>{pw},.{decimals}f}", f"bold {color}"), (f" {qty:>{qw},}  ", FG),
                (_bar(qty / top, bar_w), color))

    out += [level(int(ap[j]), int(aq[j]), RED) for j in reversed(range(levels))]
    if bp[0] > 0 and ap[0] > 0:
        spread, mid = (ap[0] - bp[0]) / SCALE, (ap[0] + bp[0]) / 2 / SCALE
        bps = 1e4 * spread / mid
        text = f"{'spread':>{pw}} {spread:>{qw}.{decimals}f}"
        for extra in (f"  {bps:.1f} bp · mid {mid:,.{decimals + 1}f}", f"  {bps:.1f} bp", ""):
            if len(text) + len(extra) <= width:
                break
        out.append(((text + extra, CYAN),))
    else:
        text = f"{'spread':>{pw}} {'–':>{qw}}"
        out.append(((text + ("  one-sided book" if len(text) + 16 <= width else ""), ORANGE),))
    out += [level(int(bp[j]), int(bq[j]), GREEN) for j in range(levels)]
    return out


# Sizes: earnings and sector news are fractions (of EPS, of fair value), guidance and rate
# news change a growth estimate or the rate: all shown in percent (points). A rate rise is
# bad news for prices.
_GOOD_IF_NEGATIVE = {"rate"}


def news_rows(events: Sequence[tuple], width: int, height: int) -> list[Row]:
    """News (``event_rows`` rows), newest first: tick, kind, target, size and the change of
    the targets' fair value; the last and then the first column are left out when narrow."""
    if not events:
        return [(("no news yet", MUTED),)]
    fair, tick = width >= 42, width >= 33
    header = (f"{'tick':>6} " if tick else "") + f"{'kind':<9}{'target':<9}{'size':>8}"
    out: list[Row] = [((header + (f" {'fair Δ':>8}" if fair else ""), f"bold {BLUE}"),)]
    for t, kind, target, size, _symbols, before, after in events[: max(height - 1, 0)]:
        good = (size < 0) if kind in _GOOD_IF_NEGATIVE else (size > 0)
        row: list[Run] = [(f"{t:>6,} ", MUTED)] if tick else []
        row += [
            (f"{kind:<9}", ORANGE if kind in ("rate", "guidance") else CYAN),
            (f"{target[:8]:<9}", FG),
            (f"{100 * size:>+7.2f}%", GREEN if good else RED),
        ]
        if fair and before > 0:
            change = 100 * (after / before - 1)
            row.append((f" {change:>+7.2f}%", GREEN if change >= 0 else RED))
        out.append(tuple(row))
    return out


def pnl_table(kinds: Sequence[str], agents: np.ndarray, equity: np.ndarray, equity0: np.ndarray) -> "Table":
    """P&L per strategy kind and in all: agents, equity, P&L (currency) and P&L in percent
    of the opening equity. ``equity`` and ``equity0`` f64[K] units."""
    rows = [(k, int(agents[i]), float(equity[i]), float(equity0[i])) for i, k in enumerate(kinds)]
    rows.append(("all", int(np.sum(agents)), float(np.sum(equity)), float(np.sum(equity0))))
    cells = []
    for kind, n, eq, eq0 in rows:
        gain = (eq - eq0) / SCALE
        pct = 100 * (eq / eq0 - 1) if eq0 > 0 else 0.0
        color = GREEN if gain > 0 else RED if gain < 0 else FG
        cells.append([(kind, f"bold {FG}" if kind == "all" else CYAN), (f"{n:,}", FG),
                      (compact(eq / SCALE), FG), (compact(gain, signed=True), color),
                      (f"{pct:+.2f}%", color)])
    return Table(("strategy", "agents", "equity", "P&L", "P&L %"), tuple(map(tuple, cells)), drop=(1, 2))


def risk_table(kinds: Sequence[str], stats: dict[str, np.ndarray], confidence: float) -> "Table":
    """Risk per strategy kind (``kind_risk``'s host arrays): mean Sharpe and VaR of the
    agents where they are ready ("–" where none is), mean and worst maximum drawdown."""
    cells = []
    for i, kind in enumerate(kinds):
        sharpe, ready, var_ready = stats["sharpe"][i], stats["sharpe_ready"][i] > 0, stats["var_ready"][i] > 0
        cells.append([
            (kind, CYAN),
            (f"{sharpe:+.3f}", GREEN if sharpe > 0 else RED) if ready else ("–", MUTED),
            (f"{100 * stats['drawdown'][i]:.2f}%", YELLOW),
            (f"{100 * stats['drawdown_worst'][i]:.2f}%", ORANGE),
            (f"{100 * stats['var'][i]:.3f}%", RED) if var_ready else ("–", MUTED),
        ])
    return Table(("strategy", "Sharpe", "max DD", "worst", f"VaR {confidence:.0%}"), tuple(map(tuple, cells)),
                 drop=(3, 2))


# --------------------------------------------------------------------------- widgets


class RowsView(ScrollView):
    """A panel drawn from rows of styled runs through Textual's line API. A redraw
    repaints only the rows that changed, which keeps a 10 fps screen cheap. With
    ``SCROLLS`` the rows may outgrow the panel and scroll (mouse wheel)."""

    DEFAULT_CSS = """
    RowsView { overflow: hidden hidden; }
    """
    SCROLLS = False
    can_focus = False  # the keys belong to the app; the mouse wheel still scrolls

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.rows: list[Row] = []
        self._styles: dict[str | None, Style] = {}

    def build(self, width: int, height: int) -> list[Row]:
        """The rows for a content area of ``width`` x ``height`` cells."""
        return []

    def redraw(self) -> None:
        """Rebuild the rows and repaint those that changed."""
        width, height = self.size
        if width <= 0 or height <= 0:
            return
        new = self.build(width, height)
        if not self.SCROLLS:
            new = new[:height]
        old, self.rows = self.rows, new
        if self.SCROLLS:
            virtual = Size(max((len(row_text(r)) for r in new), default=0), len(new))
            if virtual != self.virtual_size:
                self.virtual_size = virtual
                self.refresh()
                return
        changed = [y for y in range(max(len(old), len(new)))
                   if y >= len(old) or y >= len(new) or old[y] != new[y]]
        if len(changed) >= height:
            self.refresh()
        else:
            for y in changed:
                self.refresh_line(y)

    def on_resize(self) -> None:
        self.rows = []
        self.redraw()
        self.refresh()

    def _style(self, spec: str | None) -> Style:
        style = self._styles.get(spec)
        if style is None:
            base = self.rich_style
            style = self._styles[spec] = base if spec is None else base + Style.parse(spec)
        return style

    def render_line(self, y: int) -> Strip:
        sx, sy = self.scroll_offset
        width = self.size.width
        if y + sy >= len(self.rows):
            return Strip.blank(width, self._style(None))
        strip = Strip([Segment(text, self._style(spec)) for text, spec in self.rows[y + sy]])
        return strip.crop(sx, sx + width) if sx else strip


class TableView(RowsView):
    """A :class:`Table` fitted to the panel; scrolls when it still outgrows it."""

    DEFAULT_CSS = """
    TableView {
        overflow: hidden auto;
        scrollbar-size: 1 1;
        scrollbar-background: $background;
        scrollbar-color: $panel;
    }
    """
    SCROLLS = True
    table: "Table | None" = None

    def build(self, width: int, height: int) -> list[Row]:
        if self.table is None:
            return []
        scrollbar = len(self.table.cells) + 1 > height  # it takes a column
        return self.table.rows(width - scrollbar)


@dataclasses.dataclass(frozen=True)
class Table:
    """A table: the first column left-aligned, the others right-aligned; one run per cell.
    ``drop`` lists columns in the order they are left out when the panel is too narrow."""

    header: tuple[str, ...]
    cells: tuple[tuple[Run, ...], ...]
    drop: tuple[int, ...] = ()
    gap: int = 2

    def rows(self, width: int | None = None) -> list[Row]:
        """The header and the rows, fitted to ``width`` cells if it is given: columns
        dropped, then the first column cut (to 8 characters at least)."""
        widths = [max([len(h), *(len(row[i][0]) for row in self.cells)]) for i, h in enumerate(self.header)]
        keep = list(range(len(self.header)))
        total = lambda: sum(widths[i] for i in keep) + self.gap * (len(keep) - 1)  # noqa: E731
        for col in self.drop:
            if width is None or total() <= width:
                break
            keep.remove(col)
        if width is not None and total() > width:
            widths[0] = max(8, widths[0] - (total() - width))
        sep = " " * self.gap

        def line(runs: Sequence[Run]) -> Row:
            first, style = runs[0]
            first = first if len(first) <= widths[0] else first[: widths[0] - 1] + "…"
            out = [(first.ljust(widths[0]), style)]
            out += [(sep + runs[i][0].rjust(widths[i]), runs[i][1]) for i in keep[1:]]
            return tuple(out)

        return [line([(h, f"bold {BLUE}") for h in self.header]), *(line(r) for r in self.cells)]


class StatusBar(RowsView):
    """One line: tick / total with a progress bar, ticks per second, speed limit, state."""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $foreground; }
    """
    row: Row = ()
    optional: tuple[int, ...] = ()  # runs of ``row`` left out, in this order, when too wide

    def build(self, width: int, height: int) -> list[Row]:
        row, drop = list(self.row), list(self.optional)
        while drop and len(row_text(tuple(r for r in row if r is not None))) > width:
            row[drop.pop(0)] = None
        return [tuple(r for r in row if r is not None)]


class PriceChart(RowsView):
    """Last price and fair value of the selected symbol (braille line chart)."""

    data: tuple | None = None  # (ticks, price, fair, decimals)

    def build(self, width: int, height: int) -> list[Row]:
        if self.data is None:
            return [(("waiting for the first tick…", MUTED),)]
        return chart_rows(width, height, *self.data)


class BookView(RowsView):
    """Order book depth of the selected symbol."""

    data: tuple | None = None  # (depth, symbol, decimals)

    def build(self, width: int, height: int) -> list[Row]:
        if self.data is None:
            return [(("no book yet", MUTED),)]
        depth, s, decimals = self.data
        return book_rows(depth, s, width, height, decimals)


class NewsView(RowsView):
    """The news feed, newest first."""

    events: tuple = ()

    def build(self, width: int, height: int) -> list[Row]:
        return news_rows(self.events, width, height)


# --------------------------------------------------------------------------- the app


class QtgApp(App):
    """The terminal view. Runs ``sim.run(ticks, hooks, gate)`` in a worker thread and
    redraws ``ui.fps`` times a second from the :class:`TuiHook`'s latest frame.

    After the run: ``ticks_run`` (ticks this run), ``error`` (what the run raised, or
    None), ``finished`` (the worker is done: the hooks' ``on_end`` ran).
    """

    TITLE = "Quant Trading Gym"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { background: $background; }
    #symbols { height: 2; margin: 0 1; }
    #top { height: 3fr; }
    #bottom { height: 2fr; min-height: 8; }
    .panel {
        border: round $primary 60%;
        border-title-color: $accent;
        border-title-style: bold;
        border-subtitle-color: $foreground-muted;
        background: $background;
        padding: 0 1;
    }
    .panel:focus-within { border: round $primary; }
    #chart { width: 2fr; }
    #book { width: 1fr; min-width: 34; max-width: 60; }
    #pnl { width: 5fr; height: 100%; }
    #risk { width: 5fr; height: 100%; }
    #news { width: 5fr; max-width: 46; height: 100%; }
    """

    BINDINGS = [
        Binding("space", "toggle_pause", "Pause/Run", priority=True),
        Binding("s", "step", "Step", priority=True),
        Binding("plus,equals_sign", "faster", "Faster", key_display="+", priority=True),
        Binding("minus,underscore", "slower", "Slower", key_display="-", priority=True),
        Binding("left", "symbol_offset(-1)", "Symbol", key_display="1-9 ←→", priority=True),
        Binding("right", "symbol_offset(1)", "Next", show=False, priority=True),
        Binding("w", "snapshot", "Snapshot", priority=True),
        Binding("q", "quit", "Quit", priority=True),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        *[Binding(str(i), f"symbol({i - 1})", show=False, priority=True) for i in range(1, 10)],
    ]

    symbol: reactive[int] = reactive(0, init=False)

    def __init__(self, sim: Simulation, hooks: Sequence[SimulationHook], ticks: int, ui: UIConfig,
                 snapshot: Callable[[], Any] | None = None, exit_at_end: bool = False) -> None:
        super().__init__()
        self.theme = "tokyo-night"
        self.sim, self.ticks, self.ui = sim, int(ticks), ui
        self.snapshot_fn, self.exit_at_end = snapshot, exit_at_end
        hooks = list(hooks)
        tui = next((h for h in hooks if isinstance(h, TuiHook)), None)
        if tui is None:
            tui = TuiHook(ui)
            hooks.append(tui)
        self.hook, self.hooks = tui, hooks
        self.control = RunControl(paused=ui.paused, speed=ui.speed)
        self.start_tick = sim.tick
        self.total = self.start_tick + self.ticks
        self.symbols = tuple(sim.static.symbols)
        self.ticks_run = 0
        self.error: BaseException | None = None
        self.finished = False
        self.thread: threading.Thread | None = None
        self._done = threading.Event()
        self._shown: dict[str, tuple[int, float]] = {}  # panel -> (frame version, when)
        self._frame: Frame | None = None
        self._legend = ""

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        tabs = [Tab(f"{i + 1} {s}" if i < 9 else s, id=f"sym-{i}") for i, s in enumerate(self.symbols)]
        yield Tabs(*tabs, id="symbols")
        with Horizontal(id="top"):
            yield PriceChart(id="chart", classes="panel")
            yield BookView(id="book", classes="panel")
        with Horizontal(id="bottom"):
            yield TableView(id="pnl", classes="panel")
            yield TableView(id="risk", classes="panel")
            yield NewsView(id="news", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#pnl", TableView).border_title = "P&L by strategy"
        risk = self.query_one("#risk", TableView)
        risk.border_title = "Risk by strategy"
        risk.border_subtitle = "mean per agent · per tick"
        self.query_one("#news", NewsView).border_title = "News"
        self.query_one("#symbols", Tabs).active = "sym-0"
        self._retitle()
        self._update_status()
        self.thread = threading.Thread(target=self._run_simulation, name="qtg-simulation")
        self.thread.start()
        self.set_interval(1.0 / max(float(self.ui.fps), 0.1), self._redraw)

    # -- simulation thread ---------------------------------------------------------------

    def _run_simulation(self) -> None:
        try:
            self.ticks_run = self.sim.run(self.ticks, self.hooks, gate=self._gate)
        except BaseException as e:  # noqa: BLE001 - shown on screen, re-raised by run_tui
            self.error = e
            self.ticks_run = self.hook.ticks_seen
        finally:
            self._done.set()

    def _gate(self, sim: Simulation) -> bool:
        def flush() -> None:
            self.hook.publish(sim)
            self.hook.pause_rate()

        return self.control.gate(on_pause=flush)

    # -- screen --------------------------------------------------------------------------

    def _redraw(self) -> None:
        """Timer, ``ui.fps`` times a second: show the newest frame (the book at most
        ``BOOK_HZ`` and the tables ``TABLE_HZ`` times a second); notice the end."""
        if self._done.is_set() and not self.finished:
            self._on_finished()
        frame = self.hook.latest()
        if frame is not None:
            self._frame = frame
            now, settled = time.perf_counter(), self.finished or self.control.paused
            for panel, hz, show in (("chart", float(self.ui.fps), self._show_chart),
                                    ("book", BOOK_HZ, self._show_book),
                                    ("tables", TABLE_HZ, self._show_tables)):
                version, at = self._shown.get(panel, (0, -np.inf))
                if version != frame.version and (settled or now - at >= 1.0 / hz):
                    show(frame)
                    self._shown[panel] = (frame.version, now)
        self._update_status()

    def _on_finished(self) -> None:
        self.finished = True
        if self.thread is not None:
            self.thread.join()
        if self.error is not None:
            self.notify(f"{type(self.error).__name__}: {self.error}", title="the run failed",
                        severity="error", timeout=30)
        if self.control.quitting or self.exit_at_end:
            self.exit(self.ticks_run)

    def _show_chart(self, frame: Frame) -> None:
        s = self.symbol
        chart = self.query_one("#chart", PriceChart)
        dec = self.hook.decimals[s] if s < len(self.hook.decimals) else 2
        chart.data = None
        if len(frame.history_ticks):
            chart.data = (frame.history_ticks, frame.last[:, s], frame.fair[:, s], dec)
            last, fair = frame.last[-1, s] / SCALE, frame.fair[-1, s] / SCALE
            move = GREEN if last >= frame.last[0, s] / SCALE else RED
            legend = (f"[{BLUE}]━ last[/] [{move}]{last:,.{dec}f}[/]   "
                      f"[{YELLOW}]━ fair[/] {fair:,.{dec}f}   "
                      f"[{MUTED}]{len(frame.history_ticks)} ticks[/]")
            if legend != self._legend:
                chart.border_subtitle = self._legend = legend
        chart.redraw()

    def _show_book(self, frame: Frame) -> None:
        s = self.symbol
        book = self.query_one("#book", BookView)
        book.data = (frame.depth, s, self.hook.decimals[s] if s < len(self.hook.decimals) else 2)
        book.redraw()

    def _show_tables(self, frame: Frame) -> None:
        pnl, risk = self.query_one("#pnl", TableView), self.query_one("#risk", TableView)
        pnl.table = pnl_table(self.hook.kinds, self.hook.agents, frame.equity, frame.equity0)
        pnl.redraw()
        stats = {k: np.asarray(v) for k, v in frame.risk.items()}
        risk.table = risk_table(self.hook.kinds, stats, self.sim.static.risk.var_confidence)
        risk.redraw()
        news = self.query_one("#news", NewsView)
        if news.events is not frame.news:
            news.events = frame.news
            n = frame.news_total
            news.border_subtitle = f"{n} event{'s' if n != 1 else ''}" if n else ""
            news.redraw()

    def _update_status(self) -> None:
        frame = self._frame
        # Never sim.tick here: the worker's next tick may have donated the state it reads.
        tick = frame.tick if frame is not None else self.start_tick
        done = tick - self.start_tick
        frac = done / self.ticks if self.ticks else 1.0
        c = self.control
        if self.error is not None:
            state, color = "■ ERROR", RED
        elif self.finished:
            state, color = ("■ STOPPED", ORANGE) if self.sim.stop_reason else ("■ FINISHED", GREEN)
        elif c.quitting:
            state, color = "… STOPPING", ORANGE
        elif c.paused:
            state, color = "❚❚ PAUSED", YELLOW
        else:
            state, color = "▶ RUNNING", GREEN
        running = not (self.finished or c.paused) and frame is not None
        rate = f"{frame.rate:,.0f}" if running and frame.rate > 0 else "–"
        bar_w = 20
        row: list[Run] = [
            (" ◆ QTG ", f"bold {BLUE}"), ("│ tick ", MUTED), (f"{tick:,}", f"bold {FG}"),
            (f" / {self.total:,} ", MUTED), (_bar(frac, bar_w).ljust(bar_w, "░"), BLUE),
            (f" {100 * frac:3.0f}% ", MUTED), ("│ ", MUTED), (rate, f"bold {FG}"),
            (" ticks/s │ limit ", MUTED), (speed_label(c.speed), f"bold {CYAN}"), (" │ ", MUTED),
            (state, f"bold {color}"),
        ]
        optional = [4, 5]  # the progress bar goes first when the screen is narrow
        if self.finished and self.sim.stop_reason:
            optional.insert(0, len(row))
            row.append((f" ({self.sim.stop_reason})", MUTED))
        if self.finished and not c.quitting:
            row.append(("  press q to close", MUTED))
        status = self.query_one("#status", StatusBar)
        if status.row != tuple(row):
            status.row, status.optional = tuple(row), tuple(optional)
            status.redraw()

    def _retitle(self) -> None:
        name = self.symbols[self.symbol]
        self.query_one("#chart", PriceChart).border_title = f"Price vs fair value · {name}"
        self.query_one("#book", BookView).border_title = f"Order book · {name}"

    def watch_symbol(self, symbol: int) -> None:
        self.query_one("#symbols", Tabs).active = f"sym-{symbol}"
        self._retitle()
        if self._frame is not None:
            self._show_chart(self._frame)
            self._show_book(self._frame)

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab is not None and event.tab.id and event.tab.id.startswith("sym-"):
            self.symbol = int(event.tab.id[4:])

    # -- actions -------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        if self.finished:
            return
        self.control.toggle_pause()
        self.hook.pause_rate()
        self._update_status()

    def action_step(self) -> None:
        if self.finished:
            return
        if not self.control.paused:
            self.control.pause()
            self.notify("paused: press s to step one tick, space to run")
        else:
            self.control.step()
        self._update_status()

    def action_faster(self) -> None:
        self.control.set_speed(faster(self.control.speed))
        self._update_status()

    def action_slower(self) -> None:
        self.control.set_speed(slower(self.control.speed))
        self._update_status()

    def action_symbol(self, index: int) -> None:
        if 0 <= index < len(self.symbols):
            self.symbol = index

    def action_symbol_offset(self, step: int) -> None:
        self.symbol = (self.symbol + step) % len(self.symbols)

    def action_snapshot(self) -> None:
        if self.snapshot_fn is None:
            self.notify("snapshots are not available in this run", severity="warning")
            return
        if self.finished:
            self.notify("the run has ended: no tick boundary left for a snapshot", severity="warning")
            return
        self.snapshot_fn()
        when = "at the next tick (step or resume)" if self.control.paused else "at the next tick boundary"
        self.notify(f"snapshot requested: written {when}", title="snapshot")

    async def action_quit(self) -> None:
        """Stop the simulation at the next tick boundary; exit once its hooks have ended."""
        if self.finished:
            self.exit(self.ticks_run)
            return
        if not self.control.quitting:
            self.sim.request_stop("quit from the terminal view")
            self.control.quit()
            self._update_status()

    def stop_and_join(self) -> None:
        """Stop the simulation thread (if any) and wait for it (hooks' on_end included)."""
        if self.thread is not None and self.thread.is_alive():
            if not self._done.is_set():
                self.sim.request_stop("the terminal view closed")
                self.control.quit()
            self.thread.join()


class _HeldLogs(logging.Handler):
    """While the screen is up, console log records would garble it: hold them, and replay
    them to the console handlers afterwards. Warnings, and qtg's own news (e.g. "snapshot
    written"), also pop up as notifications."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []
        self.removed: list[tuple[logging.Logger, logging.Handler]] = []
        self.app: App | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        ours = record.name == log.name or record.name.startswith(log.name + ".")
        if self.app is not None and (record.levelno >= logging.WARNING or ours):
            self.app.notify(record.getMessage(), markup=False,
                            severity="warning" if record.levelno >= logging.WARNING else "information")

    def __enter__(self) -> "_HeldLogs":
        for logger in (logging.getLogger(), log):
            for h in list(logger.handlers):
                if type(h) is logging.StreamHandler:  # console only; files keep logging
                    logger.removeHandler(h)
                    self.removed.append((logger, h))
        logging.getLogger().addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger().removeHandler(self)
        for logger, h in self.removed:
            logger.addHandler(h)
        console = [h for _, h in self.removed] or [logging.lastResort]
        for record in self.records:
            for h in console:
                if h is not None and record.levelno >= h.level:
                    h.handle(record)


def run_tui(sim: Simulation, hooks: Sequence[SimulationHook], ticks: int, ui: UIConfig,
            snapshot: Callable[[], Any] | None = None, exit_at_end: bool = False,
            headless: bool = False, size: tuple[int, int] | None = None,
            auto_pilot: Callable[[Any], Awaitable[None]] | None = None) -> int:
    """Run up to ``ticks`` ticks under the terminal view; return the ticks run.

    ``hooks`` should contain a :class:`TuiHook` (one is added otherwise). ``snapshot``
    asks for a world snapshot at the next tick boundary (key ``w``). The screen stays up
    after the last tick until ``q``, unless ``exit_at_end``. ``headless`` (no terminal
    output), ``size`` (columns, lines) and ``auto_pilot`` (a coroutine function given
    Textual's ``Pilot``, to press keys) are for scripted runs, tests and benchmarks.
    When this returns, the simulation thread has finished and every hook's ``on_end`` has
    run; an error of the run is raised here.
    """
    app = QtgApp(sim, hooks, ticks, ui, snapshot=snapshot, exit_at_end=exit_at_end)
    with _HeldLogs() as held:
        held.app = app
        try:
            app.run(headless=headless, size=size, auto_pilot=auto_pilot)
        finally:
            app.stop_and_join()
            held.app = None
    if app.error is not None:
        raise app.error
    return app.ticks_run


def screenshot(path: str, overrides: Sequence[str] = (), ticks: int = 1500,
               size: tuple[int, int] = (160, 48)) -> str:
    """Run a world (``qtg.run`` overrides) under the view, headless, and save an SVG of the
    screen once it has run ``ticks`` ticks (the README's picture). Returns the path."""
    from pathlib import Path

    from qtg.core.compose import load_config
    from qtg.core.world import build_world, make_engine_for

    cfg = load_config([*overrides, "hooks=[]", "ui=tui", "ui.paused=false"])
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    out = Path(path)

    async def shoot(pilot) -> None:
        app = pilot.app
        while (frame := app.hook.latest()) is None or frame.tick < ticks:
            await pilot.pause(0.05)
        await pilot.pause(0.3)  # a redraw of the newest frame and the tables
        app.save_screenshot(out.name, str(out.parent))
        await pilot.press("q")

    run_tui(sim, [TuiHook(cfg.ui)], cfg.run.ticks, cfg.ui, headless=True, size=size, auto_pilot=shoot)
    return str(out)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Save an SVG screenshot of the terminal view.")
    parser.add_argument("path", help="the SVG file to write, e.g. docs/tui.svg")
    parser.add_argument("overrides", nargs="*", help="qtg.run config overrides")
    parser.add_argument("--ticks", type=int, default=1500, help="ticks to run before the shot")
    parser.add_argument("--size", default="160x48", help="columns x lines")
    args = parser.parse_args()
    cols, lines = map(int, args.size.split("x"))
    print(screenshot(args.path, args.overrides, args.ticks, (cols, lines)))
