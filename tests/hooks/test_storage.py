"""The storage hook (qtg.hooks.storage): the database equals the run (trades, tick rows, candles
against a slow reference, events, portfolio snapshots, orders), a SIGKILL leaves a
consistent database, a stop flushes, snapshots cut and continue a run exactly, a foreign
schema is refused, writer errors surface, and ``python -m qtg.report`` draws from it."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qtg.core.compose import load_config
from qtg.core.config import config_dict
from qtg.core.news import event_rows
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks.storage import SCHEMA_VERSION, TABLES, RunDB, Storage, StorageError
from qtg.run import stop_on_signals
from systems.measure import equity

REPO = Path(__file__).resolve().parents[2]
OVERRIDES = ["population=small", "population.noise.count=40", "population.market_maker.count=6",
             "run.ticks=150", "hooks=[]", "storage.candles=[5,20,60]", "storage.batch_ticks=7",
             "storage.portfolio_every=25"]
TICKS = 150
FILL_FIELDS = ("taker_id", "maker_id", "taker_agent", "maker_agent", "symbol", "side", "price", "qty")
BOOK_FIELDS = ("bid", "ask", "bid_qty", "ask_qty", "last", "high", "low", "volume")


def make_sim(cfg) -> Simulation:
    w = build_world(cfg)
    return Simulation(w.static, w.params, w.state, make_engine_for(cfg, w.static))


def make_storage(cfg, run_dir: Path) -> Storage:
    return Storage(run_dir / cfg.storage.file, cfg.storage, config_dict(cfg), cfg.seed)


class Keep:
    """Copies of what every tick did (the TickResult arrays may be views of buffers the
    next tick reuses) and of the wallets at the portfolio snapshots."""

    def __init__(self, every: int = 25) -> None:
        self.every = every
        self.ticks, self.fills, self.book, self.marks, self.fair, self.events = [], [], [], [], [], []
        self.orders, self.outcomes, self.wallets = [], [], {}

    def on_start(self, sim):
        pass

    def on_tick(self, sim, r):
        st = sim.static
        self.ticks.append(r.tick)
        self.fills.append({k: np.array(getattr(r.fills, k)) for k in FILL_FIELDS})
        self.book.append(np.stack([np.array(getattr(r, k)) for k in BOOK_FIELDS]))
        self.marks.append(np.array(r.marks))
        self.fair.append(np.array(r.fair))
        self.events.extend(event_rows(r.events, r.tick, st.symbols, st.sectors, st.sector_of))
        self.orders.append({k: np.array(v) for k, v in r.orders.__dict__.items()})
        self.outcomes.append({k: np.array(v) for k, v in r.outcomes.__dict__.items()})
        if r.tick % self.every == 0:
            w = sim.state.wallet
            self.wallets[r.tick] = (np.array(w.cash), np.array(w.position), np.array(equity(sim.state)))

    def on_end(self, sim):
        pass


@pytest.fixture(scope="module")
def cfg():
    return load_config(OVERRIDES)


@pytest.fixture(scope="module")
def stored(cfg, tmp_path_factory):
    """One 150-tick run of the small world with storage and a Keep hook."""
    run_dir = tmp_path_factory.mktemp("stored")
    sim, keep, storage = make_sim(cfg), Keep(), None
    storage = make_storage(cfg, run_dir)
    assert sim.run(TICKS, hooks=[storage, keep]) == TICKS
    return run_dir, sim, keep, storage


@pytest.fixture
def db(stored):
    with RunDB(stored[0]) as db:
        yield db


def all_rows(path: Path, table: str, order: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
    finally:
        con.close()


# -- the database equals the run ----------------------------------------------------------


def test_run_row_and_summary(stored, db):
    run_dir, sim, keep, storage = stored
    (run,) = db.runs()
    assert run["last_tick"] == TICKS - 1 == db.last_tick()
    assert run["symbols"] == list(sim.static.symbols) == db.symbols()
    assert run["kinds"] == [{"name": k.name, "start": k.start, "stop": k.stop} for k in sim.static.kinds]
    assert run["seed"] == 0 and run["candles"] == [5, 20, 60] and run["resumed_at"] is None
    assert run["config"]["storage"]["batch_ticks"] == 7 and run["ended"] is not None
    total = sum(int(db.sql(f"SELECT count(*) AS n FROM {t}")["n"][0]) for t in TABLES)
    s = storage.summary()
    assert s["rows"] == total and s["batches"] == 22  # 150 ticks in batches of 7 (+1 at the end)
    assert s["file"] == str(run_dir / "qtg.sqlite") and s["bytes"] == (run_dir / "qtg.sqlite").stat().st_size
    assert not Path(f"{s['file']}-wal").exists() or Path(f"{s['file']}-wal").stat().st_size == 0
    con = sqlite3.connect(run_dir / "qtg.sqlite")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_trades_equal_the_fills_in_order(stored, db):
    keep = stored[2]
    t = db.trades()
    counts = [len(f["qty"]) for f in keep.fills]
    assert len(t["tick"]) == sum(counts) > 500
    np.testing.assert_array_equal(t["tick"], np.repeat(keep.ticks, counts))
    np.testing.assert_array_equal(t["seq"], np.concatenate([np.arange(n) for n in counts]))
    for k in FILL_FIELDS:
        np.testing.assert_array_equal(t[k], np.concatenate([f[k] for f in keep.fills]), err_msg=k)
    # Selections: one symbol by name or index, a half-open tick range.
    acme = db.trades(symbol="ACME")
    assert (acme["symbol"] == 0).all() and len(acme["tick"]) == int((t["symbol"] == 0).sum())
    np.testing.assert_array_equal(db.trades(symbol=0)["price"], acme["price"])
    part = db.trades(ticks=(10, 20))
    assert len(part["tick"]) == sum(counts[10:20]) and part["tick"].min() == 10 and part["tick"].max() == 19
    with pytest.raises(StorageError, match="unknown symbol 'NOPE'"):
        db.trades(symbol="NOPE")


def test_tick_rows_equal_the_tick_results(stored, db):
    keep = stored[2]
    rows = db.ticks()
    s_n = len(db.symbols())
    assert len(rows["tick"]) == TICKS * s_n
    np.testing.assert_array_equal(rows["tick"], np.repeat(np.arange(TICKS), s_n))
    np.testing.assert_array_equal(rows["symbol"], np.tile(np.arange(s_n), TICKS))
    book = np.stack(keep.book)  # [T, 8, S]
    for j, k in enumerate(BOOK_FIELDS):
        np.testing.assert_array_equal(rows[k].reshape(TICKS, s_n), book[:, j], err_msg=k)
    np.testing.assert_array_equal(rows["mark"].reshape(TICKS, s_n), np.stack(keep.marks))
    np.testing.assert_array_equal(rows["fair"].reshape(TICKS, s_n), np.stack(keep.fair))
    one = db.ticks(symbol="BOLT", ticks=42)
    assert one["tick"].tolist() == [42] and one["last"].tolist() == [book[42, 4, 1]]


def slow_candles(trades: list[tuple], interval: int, last_tick: int) -> list[tuple]:
    """Reference: candles from trade rows (tick, seq, symbol, price, qty), pure Python."""
    acc: dict = {}
    for tick, seq, sym, price, qty in sorted(trades):
        key = (sym, tick // interval * interval)
        if key not in acc:
            acc[key] = [price, price, price, price, 0, 0, 0]
        c = acc[key]
        c[1], c[2], c[3] = max(c[1], price), min(c[2], price), price
        c[4] += qty
        c[5] += 1
        c[6] += price * qty
    return sorted((interval, sym, start, *c, int(start + interval - 1 <= last_tick))
                  for (sym, start), c in acc.items())


def test_candles_equal_a_slow_aggregation_of_the_trades(stored, db):
    path = stored[0] / "qtg.sqlite"
    trades = all_rows(path, "trades", "tick, seq")
    simple = [(r[1], r[2], r[7], r[9], r[10]) for r in trades]  # tick, seq, symbol, price, qty
    partial = 0
    for interval in (5, 20, 60):
        got = [r[1:] for r in all_rows(path, f"candles WHERE interval = {interval}", "symbol, start_tick")]
        want = slow_candles(simple, interval, TICKS - 1)
        assert sorted(got) == want, interval
        partial += sum(1 for r in want if r[-1] == 0)
        c = db.candles(interval, symbol="CRUX")
        assert (c["symbol"] == 2).all() and len(c["open"]) == sum(1 for r in want if r[1] == 2)
    # 150 ticks: 150 % 20 = 10 and 150 % 60 = 30 leave the last 20- and 60-tick candles open.
    assert partial > 0
    open60 = db.candles(60, complete=False)
    assert len(open60["symbol"]) > 0 and (open60["start_tick"] == 120).all()
    assert (db.candles(5, complete=False)["symbol"].size == 0)


def test_events_match_event_rows(stored, db):
    keep = stored[2]
    ev = db.events()
    assert len(keep.events) >= 1  # the fixture's seed has news in 150 ticks
    got = list(zip(ev["tick"].tolist(), ev["kind"], ev["target"], ev["size"].tolist(), ev["symbols"],
                   ev["fair_before"].tolist(), ev["fair_after"].tolist()))
    assert got == keep.events
    assert ev["seq"].tolist() == [sum(1 for e in keep.events[:i] if e[0] == keep.events[i][0])
                                  for i in range(len(keep.events))]


def test_portfolio_snapshots_equal_the_wallets(stored, db):
    sim, keep = stored[1], stored[2]
    kind_of = np.concatenate([np.full(k.count, j) for j, k in enumerate(sim.static.kinds)])
    assert sorted(keep.wallets) == [0, 25, 50, 75, 100, 125]
    assert np.unique(db.portfolio()["tick"]).tolist() == [0, 25, 50, 75, 100, 125]
    for tick, (cash, position, eq) in keep.wallets.items():
        p = db.portfolio(tick)
        np.testing.assert_array_equal(p["agent"], np.arange(len(cash)))
        np.testing.assert_array_equal(p["kind"], kind_of)
        np.testing.assert_array_equal(p["cash"], cash)
        np.testing.assert_array_equal(p["equity"], eq)
        pos = db.positions(tick)
        a, s = np.nonzero(position)
        np.testing.assert_array_equal(pos["agent"], a)
        np.testing.assert_array_equal(pos["symbol"], s)
        np.testing.assert_array_equal(pos["qty"], position[a, s])
    assert (db.positions()["qty"] != 0).all()


def test_sql_helper_returns_numpy_columns(db):
    out = db.sql("SELECT symbol, sum(qty) AS volume, avg(price) AS mean FROM trades GROUP BY symbol ORDER BY symbol")
    assert out["symbol"].dtype == np.int64 and out["mean"].dtype == np.float64
    ticks = db.ticks()
    per_symbol = ticks["volume"].reshape(TICKS, -1).sum(axis=0)
    np.testing.assert_array_equal(out["volume"], per_symbol[out["symbol"]])
    with pytest.raises(StorageError, match="no such table: nope"):
        db.sql("SELECT * FROM nope")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        db.con.execute("DELETE FROM trades")


# -- orders, stops, errors -----------------------------------------------------------------


def test_orders_table_equals_the_orders_the_engine_saw(tmp_path):
    cfg = load_config(OVERRIDES + ["storage.orders=true"])
    sim, keep = make_sim(cfg), Keep()
    sim.run(20, hooks=[make_storage(cfg, tmp_path), keep])
    with RunDB(tmp_path) as db:
        o = db.orders()
    counts = [len(x["id"]) for x in keep.orders]
    assert len(o["id"]) == sum(counts) > 100
    np.testing.assert_array_equal(o["tick"], np.repeat(np.arange(20), counts))
    np.testing.assert_array_equal(o["seq"], np.concatenate([np.arange(n) for n in counts]))
    for k in ("id", "agent", "symbol", "side", "kind", "price", "qty"):
        np.testing.assert_array_equal(o[k], np.concatenate([x[k] for x in keep.orders]), err_msg=k)
    for k in ("status", "reason", "filled"):
        np.testing.assert_array_equal(o[k], np.concatenate([x[k] for x in keep.outcomes]), err_msg=k)


class StopAt:
    def __init__(self, at: int, act) -> None:
        self.at, self.act, self.seen = at, act, 0

    def on_start(self, sim):
        pass

    def on_tick(self, sim, r):
        self.seen += 1
        if self.seen == self.at:
            self.act(sim)

    def on_end(self, sim):
        pass


def stored_ticks(run_dir: Path) -> list[int]:
    with RunDB(run_dir) as db:
        return db.sql("SELECT DISTINCT tick FROM ticks ORDER BY tick")["tick"].tolist()


def test_a_stop_request_flushes_exactly_the_ticks_run_and_a_second_run_goes_on(cfg, tmp_path):
    sim, storage = make_sim(cfg), make_storage(cfg, tmp_path)
    ran = sim.run(100, hooks=[storage, StopAt(17, lambda s: s.request_stop("test"))])
    assert ran == 17 and sim.stop_reason == "test"
    assert stored_ticks(tmp_path) == list(range(17))
    with RunDB(tmp_path) as db:
        assert db.last_tick() == 16 and db.runs()[0]["stop_reason"] == "test"
        assert db.sql("SELECT max(tick) AS t FROM trades")["t"][0] <= 16
        assert db.candles(20, complete=False)["start_tick"].tolist() != []  # the open ones, written
    # The same hook in a later run of the same simulation continues the same run.
    assert sim.run(13, hooks=[storage]) == 13
    assert stored_ticks(tmp_path) == list(range(30))
    with RunDB(tmp_path) as db:
        assert [r["id"] for r in db.runs()] == [1] and db.last_tick() == 29
        trades = [(r[1], r[2], r[7], r[9], r[10]) for r in all_rows(db.path, "trades", "tick, seq")]
        got = [r[1:] for r in all_rows(db.path, "candles WHERE interval = 20", "symbol, start_tick")]
        assert sorted(got) == slow_candles(trades, 20, 29)


def test_ctrl_c_stops_at_a_tick_boundary_with_everything_committed(cfg, tmp_path):
    sim, storage = make_sim(cfg), make_storage(cfg, tmp_path)
    with stop_on_signals(sim):  # python -m qtg.run's handlers
        ran = sim.run(100, hooks=[storage, StopAt(9, lambda s: os.kill(os.getpid(), signal.SIGINT))])
    assert sim.stop_reason == "interrupted (SIGINT)" and ran == 9
    assert stored_ticks(tmp_path) == list(range(9))


def test_writer_errors_surface_as_storage_errors(cfg, tmp_path):
    def sabotage(sim):
        con = sqlite3.connect(tmp_path / "qtg.sqlite", timeout=30)
        con.execute("DROP TABLE trades")
        con.commit()
        con.close()

    sim, storage = make_sim(cfg), make_storage(cfg, tmp_path)
    with pytest.raises(StorageError, match="writing failed: OperationalError: no such table: trades"):
        sim.run(60, hooks=[storage, StopAt(10, sabotage)])
    con = sqlite3.connect(tmp_path / "qtg.sqlite")
    last = con.execute("SELECT last_tick FROM runs").fetchone()[0]
    # Nothing of the failed batches: the committed ticks end where last_tick says.
    assert con.execute("SELECT max(tick) FROM ticks").fetchone()[0] == last < 14
    con.close()


def test_another_schema_version_or_a_foreign_file_is_refused(cfg, tmp_path):
    sim = make_sim(cfg)
    other = tmp_path / "old.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE runs (id INTEGER)")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.close()
    storage = Storage(other, cfg.storage, {}, 0)
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1} but this qtg reads and writes "
                                           f"schema version {SCHEMA_VERSION}"):
        sim.run(5, hooks=[storage])
    assert sim.tick == 0  # refused before any tick
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1}"):
        RunDB(other)
    foreign = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(foreign)
    con.execute("CREATE TABLE stuff (x)")
    con.close()
    with pytest.raises(StorageError, match="no schema version"):
        Storage(foreign, cfg.storage, {}, 0).on_start(sim)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="not a SQLite database"):
        Storage(junk, cfg.storage, {}, 0).on_start(sim)
    with pytest.raises(StorageError, match="no run database"):
        RunDB(tmp_path / "missing")


# -- snapshots: cut back and continue ---------------------------------------------------------


def table_rows(path: Path) -> dict[str, list[tuple]]:
    con = sqlite3.connect(path)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY {', '.join(c for c, _ in TABLES[t])}").fetchall()
                for t in TABLES}
    finally:
        con.close()


def test_resume_from_a_state_dict_cuts_back_and_continues_to_the_same_database(cfg, stored, tmp_path):
    cut = 61  # state_dict after tick 60: the storage cursor is at tick 60
    saved = {}

    def take(sim):
        saved["d"] = storage.state_dict()
        saved["committed"] = stored_ticks(tmp_path)

    # A run that takes a snapshot mid-way and goes on to its end.
    sim, storage = make_sim(cfg), make_storage(cfg, tmp_path)
    sim.run(TICKS, hooks=[storage, StopAt(cut, take)])
    d = saved["d"]
    assert saved["committed"] == list(range(cut))  # state_dict flushed through tick 60
    assert d["tick"] == cut - 1 and d["run_id"] == 1 and d["candles"].shape == (7, 3, len(cfg.market.symbols))
    # Resume: the same deterministic world at tick 61 and a new hook loaded with d.
    sim2 = make_sim(cfg)
    sim2.run(cut)
    storage2 = make_storage(cfg, tmp_path)
    storage2.load_state_dict(d)
    straight = table_rows(stored[0] / "qtg.sqlite")

    class CheckCut:  # after storage2's on_start: the run is cut back to tick 60 exactly
        def on_start(self, sim):
            cut_back = table_rows(tmp_path / "qtg.sqlite")
            for t in TABLES:
                if t == "candles":  # only candles that closed by tick 60 (the open ones live in d)
                    keep = [r for r in straight[t] if r[3] + r[1] - 1 <= cut - 1]
                else:
                    keep = [r for r in straight[t] if r[1] <= cut - 1]
                assert cut_back[t] == keep, t
            self.checked = True

        def on_tick(self, sim, r):
            pass

        def on_end(self, sim):
            pass

    check = CheckCut()
    assert sim2.run(TICKS - cut, hooks=[storage2, check]) == TICKS - cut
    assert check.checked
    resumed = table_rows(tmp_path / "qtg.sqlite")
    for t in TABLES:
        assert resumed[t] == straight[t], t
    with RunDB(tmp_path) as db:
        (run,) = db.runs()
        assert run["last_tick"] == TICKS - 1 and run["resume_tick"] == cut - 1 and run["resumed_at"]


def test_resume_into_a_missing_file_starts_a_new_database(cfg, tmp_path):
    sim = make_sim(cfg)
    sim.run(10)
    storage = make_storage(cfg, tmp_path)
    storage.load_state_dict({"run_id": 3, "tick": 9, "intervals": np.array([5, 20, 60]),
                             "candles": np.zeros((7, 3, len(cfg.market.symbols)), np.int64)})
    sim.run(5, hooks=[storage])
    assert stored_ticks(tmp_path) == [10, 11, 12, 13, 14]
    with RunDB(tmp_path) as db:
        assert db.runs()[0]["resume_tick"] == 9


# -- a killed process ---------------------------------------------------------------------------

KILL_SCRIPT = """
import sys
from pathlib import Path
from qtg.core.compose import load_config
from qtg.core.sim import Simulation
from qtg.hooks.storage import Storage
from qtg.core.world import build_world, make_engine_for

cfg = load_config(["population=small", "population.noise.count=10", "population.market_maker.count=4",
                   "market.symbols=[ACME,BOLT]", "hooks=[]", "storage.batch_ticks=3",
                   "storage.candles=[5,20,60]", "storage.portfolio_every=10"])
w = build_world(cfg)
sim = Simulation(w.static, w.params, w.state, make_engine_for(cfg, w.static))
sim.run(10_000_000, hooks=[Storage(Path(sys.argv[1]) / "qtg.sqlite", cfg.storage, {}, cfg.seed)])
"""


def test_sigkill_leaves_a_consistent_database(tmp_path):
    script = tmp_path / "run_forever.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    polled, deadline = -1, time.monotonic() + 90
    try:
        while polled < 40:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run did not store 40 ticks in time"
            time.sleep(0.1)
            try:
                with RunDB(tmp_path) as db:
                    polled = db.last_tick()
            except StorageError:  # not created yet
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    con = sqlite3.connect(tmp_path / "qtg.sqlite")
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        last = con.execute("SELECT last_tick FROM runs").fetchone()[0]
        assert last >= polled
        ticks = con.execute("SELECT tick, count(*) FROM ticks GROUP BY tick ORDER BY tick").fetchall()
        assert ticks == [(t, 2) for t in range(last + 1)]  # every tick, both symbols, no gap
        assert con.execute("SELECT count(*) FROM trades WHERE tick > ?", (last,)).fetchone()[0] == 0
        assert con.execute("SELECT max(tick) FROM trades").fetchone()[0] <= last
        assert con.execute("SELECT count(*) FROM portfolio_snapshots WHERE tick > ?", (last,)).fetchone()[0] == 0
        snaps = con.execute("SELECT DISTINCT tick FROM portfolio_snapshots ORDER BY tick").fetchall()
        assert [t for (t,) in snaps] == list(range(0, last + 1, 10))
    finally:
        con.close()


# -- the report ------------------------------------------------------------------------------


def test_report_draws_the_charts_from_the_database(stored, tmp_path, capsys):
    from qtg.report import main

    out = tmp_path / "charts"
    assert main([str(stored[0]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "report_prices.png"), str(out / "report_equity.png")]
    for p in printed:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(p).stat().st_size > 10_000
    assert main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qtg: report error:") and "no run database" in err and err.count("\n") == 1
