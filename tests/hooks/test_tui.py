"""The terminal view (qtg.hooks.tui): run control, the pure renderers, the app driven headless by
Textual's pilot, run_tui's contract, and a real ``python -m qtg.run ui=tui`` under tmux."""

import asyncio
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from textual.widgets import Tab, Tabs

from components.orders import Depth
from qtg.core.compose import load_config
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks.tui.app import QtgApp, run_tui
from qtg.hooks.tui.control import SPEED_LADDER, RunControl, faster, slower
from qtg.hooks.tui.hook import TuiHook
from qtg.hooks.tui.render import (
    book_rows,
    chart_rows,
    news_rows,
    pnl_table,
    row_text,
    rows_text,
)
from qtg.hooks.tui.widgets import BookView, NewsView, PriceChart, StatusBar, TableView

ROOT = Path(__file__).resolve().parents[2]
PANELS = ("status", "symbols", "chart", "book", "pnl", "risk", "news")
PANEL_TYPES = (StatusBar, Tabs, PriceChart, BookView, TableView, TableView, NewsView)
TITLES = ("Price vs fair value", "Order book", "P&L by strategy", "Risk by strategy", "News")


class Recording:
    """A hook that counts what it is called with (read from the test thread)."""

    def __init__(self):
        self.starts, self.ticks, self.ends, self.last_tick = 0, 0, 0, None

    def on_start(self, sim):
        self.starts += 1

    def on_tick(self, sim, r):
        self.ticks += 1
        self.last_tick = r.tick

    def on_end(self, sim):
        self.ends += 1


@pytest.fixture(scope="module")
def world():
    cfg = load_config(["population.noise.count=30", "population.market_maker.count=4", "hooks=[]",
                       "run.ticks=500", "ui=tui", "ui.paused=true", "ui.speed=50", "seed=5"])
    w = build_world(cfg)
    return cfg, w


def make_sim(world):
    cfg, w = world
    return Simulation(w.static, w.params, w.state, make_engine_for(cfg, w.static))


async def until(pilot, condition, timeout=120.0):
    """Let the app run until ``condition()`` holds (fails after ``timeout`` seconds: a hang
    guard, sized for the first tick's compile on a busy machine)."""
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, "timed out waiting for the app"
        await pilot.pause(0.02)


# ------------------------------------------------------------------------ run control


def test_speed_ladder_steps_up_to_unlimited_and_down_to_one():
    assert SPEED_LADDER[-1] == 0
    assert faster(1) == 2 and faster(200) == 500 and faster(500) == 0 and faster(0) == 0
    assert slower(0) == 500 and slower(500) == 200 and slower(2) == 1 and slower(1) == 1
    assert faster(3) == 5 and slower(3) == 2  # a starting speed off the ladder


def test_run_control_pauses_steps_paces_and_quits():
    c = RunControl(paused=True)
    flushed, passed = [], []
    t = threading.Thread(target=lambda: passed.append(c.gate(on_pause=lambda: flushed.append(1))))
    t.start()
    time.sleep(0.1)
    assert t.is_alive() and flushed == [1]  # blocked, after flushing once
    c.step()
    t.join(2)
    assert passed == [True]
    c.step()  # a step banked while paused lets exactly one more tick through
    assert c.gate() is True
    t = threading.Thread(target=lambda: passed.append(c.gate()))
    t.start()
    time.sleep(0.05)
    assert t.is_alive()
    c.quit()
    t.join(2)
    assert passed == [True, False]

    c = RunControl(speed=50)
    t0 = time.perf_counter()
    for _ in range(11):
        assert c.gate()
    assert time.perf_counter() - t0 >= 10 / 50 * 0.9  # ten intervals of 1/50 s
    c.set_speed(0)
    t0 = time.perf_counter()
    for _ in range(100):
        c.gate()
    assert time.perf_counter() - t0 < 0.05


# ------------------------------------------------------------------------ renderers


def test_chart_draws_both_series_with_a_price_axis():
    ticks = np.arange(100, 300)
    price = (100 + np.sin(ticks / 10)) * 10_000
    fair = np.full(200, 100.5 * 10_000)
    rows = chart_rows(80, 12, ticks, price.astype(np.int64), fair, 2)
    assert len(rows) == 12
    text = rows_text(rows)
    assert "101." in text and "99." in text  # axis labels in currency
    assert "t 100" in text and "t 299" in text
    styles = {style for row in rows for _, style in row}
    assert "#7aa2f7" in styles and "#e0af68" in styles  # price and fair value both drawn
    assert any(0x2800 < ord(ch) <= 0x28FF for ch in text)
    assert all(len(row_text(r)) <= 80 for r in rows)
    assert "waiting" in rows_text(chart_rows(80, 12, ticks[:0], price[:0], fair[:0]))


def test_book_shows_asks_over_bids_with_the_spread():
    z = np.zeros((2, 5), np.int64)
    d = Depth(bid_price=z.copy(), bid_qty=z.copy(), ask_price=z.copy(), ask_qty=z.copy())
    d.bid_price[1, :3] = [999_900, 999_800, 999_700]
    d.bid_qty[1, :3] = [10, 20, 5]
    d.ask_price[1, :2] = [1_000_100, 1_000_300]
    d.ask_qty[1, :2] = [40, 7]
    lines = rows_text(book_rows(d, 1, 40, 20)).splitlines()
    order = [next(i for i, line in enumerate(lines) if key in line)
             for key in ("100.03", "100.01", "spread", "99.99", "99.98", "99.97")]
    assert order == sorted(order)
    assert "0.02" in lines[order[2]]
    assert "█" in lines[order[1]]  # the largest level has the longest bar
    assert len(book_rows(d, 1, 40, 8)) <= 8  # as many levels as fit


def test_news_newest_first_and_pnl_table():
    rows = [(30, "earnings", "ACME", 0.05, "ACME", 100.0, 104.0), (10, "rate", "all", 0.01, "", 100.0, 98.0)]
    text = rows_text(news_rows(rows, 50, 10))
    assert text.index("earnings") < text.index("rate") and "+5.00%" in text and "+4.00%" in text
    assert "+4.00%" not in rows_text(news_rows(rows, 30, 10))  # narrow: the fair change goes first
    assert len(news_rows(rows, 50, 2)) == 2
    table = pnl_table(("market_maker", "noise"), np.array([2, 3]), np.array([2.2e10, 2.9e10]),
                      np.array([2e10, 3e10]))
    text = rows_text(table.rows())
    assert "+200.00k" in text and "-100.00k" in text and "+10.00%" in text and "agents" in text
    assert text.splitlines()[-1].startswith("all")
    narrow = table.rows(30)  # columns dropped, then the names cut, to fit
    assert all(len(row_text(r)) <= 30 for r in narrow)
    text = rows_text(narrow)
    assert "agents" not in text and "P&L %" in text and "market_mak…" in text


# ------------------------------------------------------------------------ the app


def test_pilot_pause_step_resume_symbols_snapshot_and_quit(world):
    cfg, _ = world
    sim = make_sim(world)
    rec, snaps = Recording(), []
    app = QtgApp(sim, [rec, TuiHook(cfg.ui)], 500, cfg.ui, snapshot=lambda: snaps.append(1))

    async def drive():
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: app.hook.latest() is not None)
            await pilot.pause(0.3)
            for panel, kind in zip(PANELS, PANEL_TYPES):
                widget = app.query_one(f"#{panel}")
                assert type(widget) is kind, panel
                if kind is Tabs:
                    assert [t.label.plain for t in widget.query(Tab)][:2] == ["1 ACME", "2 BOLT"]
                    assert len(widget.query(Tab)) == len(sim.static.symbols)
                else:
                    assert rows_text(widget.rows).strip(), f"the {panel} panel has drawn nothing"
            assert rec.starts == 1 and rec.ticks == 0 and app.control.paused  # starts paused
            assert "PAUSED" in rows_text(app.query_one("#status").rows)

            await pilot.press("s")
            await until(pilot, lambda: rec.ticks >= 1)
            await pilot.pause(0.3)
            assert rec.ticks == 1  # exactly one tick
            await until(pilot, lambda: app._frame is not None and app._frame.tick == 1)

            await pilot.press("space")
            await until(pilot, lambda: rec.ticks > 20)
            assert not app.control.paused
            await pilot.press("space")
            await pilot.pause(0.2)
            n = rec.ticks
            await pilot.pause(0.3)
            assert rec.ticks == n and app.control.paused  # paused again

            # Panels show data: prices, the book, P&L per kind.
            await until(pilot, lambda: app._frame is not None and app._frame.tick == n)
            chart, book = app.query_one("#chart"), app.query_one("#book")
            assert any(0x2800 < ord(ch) <= 0x28FF for ch in rows_text(chart.rows))
            assert "spread" in rows_text(book.rows)
            pnl = rows_text(app.query_one("#pnl").rows)
            assert "market_maker" in pnl and "noise" in pnl
            assert "Sharpe" in rows_text(app.query_one("#risk").rows)
            assert f"tick {n:,}" in rows_text(app.query_one("#status").rows)

            await pilot.press("2")
            assert app.symbol == 1 and "BOLT" in str(chart.border_title) and "BOLT" in str(book.border_title)
            await pilot.press("right")
            assert app.symbol == 2 and "CRUX" in str(chart.border_title)
            await pilot.press("left", "left", "left")
            assert app.symbol == 9 and "JADE" in str(book.border_title)  # wraps around
            assert app.query_one("#symbols").active == "sym-9"

            assert app.control.speed == 50  # ui.speed
            await pilot.press("minus", "minus")
            assert app.control.speed == 10
            await pilot.press("plus")
            assert app.control.speed == 20
            assert "20/s" in rows_text(app.query_one("#status").rows)

            await pilot.press("w")
            assert snaps == [1]

            await pilot.press("q")
            await until(pilot, lambda: app.finished)

    asyncio.run(drive())
    assert app.thread is not None and not app.thread.is_alive()
    assert rec.ends == 1 and app.hook.ended  # every hook's on_end ran
    assert app.ticks_run == rec.ticks == sim.tick
    assert sim.stop_reason and "quit" in sim.stop_reason
    assert app.return_value == app.ticks_run


def test_run_tui_returns_the_ticks_run_after_q_and_after_the_last_tick(world):
    cfg, _ = world
    sim = make_sim(world)
    rec = Recording()

    async def script(pilot):
        await until(pilot, lambda: app_of(pilot).hook.latest() is not None)
        await pilot.press("space")
        await until(pilot, lambda: rec.ticks >= 5)
        await pilot.pause(0.3)
        app = app_of(pilot)  # 100 x 30: still every panel, and the status line fits
        assert len(row_text(app.query_one("#status").rows[0])) <= 100
        assert "RUNNING" in row_text(app.query_one("#status").rows[0])
        for panel in ("#chart", "#book", "#pnl", "#risk"):
            widget = app.query_one(panel)
            assert widget.rows and all(len(row_text(r)) <= widget.size.width for r in widget.rows), panel
        await pilot.press("q")

    def app_of(pilot):
        return pilot.app

    ran = run_tui(sim, [rec], 10_000, cfg.ui, headless=True, size=(100, 30), auto_pilot=script)
    assert 5 <= ran == rec.ticks == sim.tick < 10_000 and rec.ends == 1
    assert not any(t.name == "qtg-simulation" for t in threading.enumerate())

    # Unpaused, with exit_at_end: runs to its last tick and returns on its own.
    rec2 = Recording()
    ui = type(cfg.ui)(**{**cfg.ui.__dict__, "paused": False, "speed": 0.0})
    assert run_tui(sim, [rec2, TuiHook(ui)], 15, ui, exit_at_end=True, headless=True) == 15
    assert rec2.ticks == 15 and rec2.ends == 1 and sim.stop_reason is None


def test_run_tui_raises_the_error_of_the_run(world):
    cfg, _ = world
    sim = make_sim(world)

    class Boom(Recording):
        def on_tick(self, sim, r):
            raise RuntimeError("boom")

    ui = type(cfg.ui)(**{**cfg.ui.__dict__, "paused": False, "speed": 0.0})
    rec = Recording()
    with pytest.raises(RuntimeError, match="boom"):
        run_tui(sim, [rec, Boom()], 50, ui, exit_at_end=True, headless=True)
    assert rec.ends == 1


def test_console_logs_are_held_while_the_screen_is_up(world):
    cfg, _ = world
    sim = make_sim(world)
    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(console)
    seen = []

    class Logs(Recording):
        def on_tick(self, sim, r):
            seen.append(console in root.handlers)
            logging.getLogger("qtg").warning("tick %d says hello", r.tick)

    ui = type(cfg.ui)(**{**cfg.ui.__dict__, "paused": False, "speed": 0.0})
    try:
        assert run_tui(sim, [Logs(), TuiHook(ui)], 3, ui, exit_at_end=True, headless=True) == 3
    finally:
        root.removeHandler(console)
    assert seen == [False, False, False]  # nothing reached the console while the screen was up
    assert stream.getvalue().count("says hello") == 3  # replayed afterwards


# ------------------------------------------------------------------------ the real thing


def test_qtg_run_ui_tui_under_tmux(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    socket, name = f"qtg-test-{uuid.uuid4().hex[:8]}", "tui"
    tmux = ["tmux", "-L", socket]
    cmd = (f"{sys.executable} -m qtg.run ui=tui run.ticks=100000 hooks=[] run.chart=false "
           f"run.agents_table=false population.noise.count=40 population.market_maker.count=10 "
           f"hydra.run.dir={tmp_path}/run; echo exited > {tmp_path}/exited; sleep 0.5")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    subprocess.run([*tmux, "new-session", "-d", "-s", name, "-x", "160", "-y", "48", "-c", str(ROOT), cmd],
                   check=True, env=env)
    try:
        screen, t0 = "", time.monotonic()
        while time.monotonic() - t0 < 60:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", name], capture_output=True,
                                    text=True).stdout
            if all(t in screen for t in TITLES) and "━ last" in screen and "spread" in screen:
                break
            time.sleep(0.3)
        assert all(t in screen for t in TITLES), screen
        assert re.search(r"━ last \d{2,3}\.\d{2}", screen), screen  # a price, in currency
        assert "tick" in screen and "ticks/s" in screen
        subprocess.run([*tmux, "send-keys", "-t", name, "q"], check=True)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30 and not (tmp_path / "exited").exists():
            time.sleep(0.2)
        assert (tmp_path / "exited").exists(), "qtg.run did not exit after q"
        assert (tmp_path / "run" / "summary.json").exists()
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            if subprocess.run([*tmux, "has-session", "-t", name], capture_output=True).returncode != 0:
                break
            time.sleep(0.2)
        assert subprocess.run([*tmux, "has-session", "-t", name], capture_output=True).returncode != 0
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
