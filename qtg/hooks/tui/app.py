"""The terminal view's app: it runs the simulation in a worker thread and redraws from the
hook's latest frame; :func:`run_tui` runs a world under it."""

from __future__ import annotations

import threading
import time
from typing import Any, Awaitable, Callable, Sequence

import numpy as np
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Footer, Tab, Tabs

from components.money import SCALE
from qtg.core.config import UIConfig
from qtg.core.sim import Simulation, SimulationHook
from qtg.hooks.tui.control import RunControl, faster, slower, speed_label
from qtg.hooks.tui.hook import Frame, TuiHook
from qtg.hooks.tui.logs import HeldLogs
from qtg.hooks.tui.render import (
    BLUE,
    CYAN,
    FG,
    GREEN,
    MUTED,
    ORANGE,
    RED,
    YELLOW,
    Run,
    bar,
    pnl_table,
    risk_table,
)
from qtg.hooks.tui.widgets import BookView, NewsView, PriceChart, StatusBar, TableView

BOOK_HZ = 5.0
"""The book panel is redrawn at most this often (a faster book is a blur to the eye)."""

TABLE_HZ = 2.0
"""The P&L, risk and news panels change slowly: redraw them at most this often."""


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
            (f" / {self.total:,} ", MUTED), (bar(frac, bar_w).ljust(bar_w, "░"), BLUE),
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
    with HeldLogs() as held:
        held.app = app
        try:
            app.run(headless=headless, size=size, auto_pilot=auto_pilot)
        finally:
            app.stop_and_join()
            held.app = None
    if app.error is not None:
        raise app.error
    return app.ticks_run
