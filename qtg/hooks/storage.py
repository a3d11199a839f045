"""The storage hook: a run's market record in SQLite (stdlib ``sqlite3``, WAL).

:class:`Storage` is a :class:`qtg.core.sim.SimulationHook`. Each tick ``on_tick`` copies the
tick's columns into pending NumPy chunks (no per-row Python) and folds the tick's fills
into the open candles; every ``batch_ticks`` ticks the pending chunks go, as one batch,
into a bounded queue. A writer thread turns each batch into rows and commits it in ONE
transaction (all tables plus ``runs.last_tick``), so a crash or a SIGKILL leaves the
database at a batch boundary: every tick up to ``runs.last_tick``, nothing beyond it. A
full queue makes the simulation wait (nothing is ever dropped); a writer error surfaces as
:class:`StorageError` in the next ``on_tick`` or in ``on_end``.

:class:`RunDB` reads a database back (read-only) as dicts of NumPy columns, and
``python -m qtg.report RUN_DIR`` draws a run's charts from it alone.

Units: prices and cash are INTEGER units (1 unit = 1/10,000 of the currency,
``components.money.SCALE``), quantities are shares; ``mark``, ``fair`` and ``equity`` are
REAL units; the events table keeps ``event_rows``' format (fair values in currency).
Symbols are stored as their index into the run's ``runs.symbols`` list, agents as rows.
``tick`` is :attr:`qtg.core.sim.TickResult.tick` (the first tick is 0) and every value is the
state after that tick; portfolio snapshots are taken after the ticks with
``tick % portfolio_every == 0``.

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`; ``meta`` holds it too):

=====================  ==================================================================
runs                   id, started (ISO UTC), config (JSON), seed, version (qtg), symbols
                       (JSON names), kinds (JSON [{name, start, stop}]), candles (JSON
                       intervals), last_tick (committed through; -1 none), resumed_at (ISO
                       UTC of the last resume, NULL if never), resume_tick, ended, stop_reason
ticks                  run_id, tick, symbol, bid, ask, bid_qty, ask_qty, last, high, low,
                       mark REAL, fair REAL, volume: one row per symbol per tick
trades                 run_id, tick, seq (in the tick), taker_id, maker_id, taker_agent,
                       maker_agent, symbol, side (taker's), price, qty
orders                 (``storage.orders``) run_id, tick, seq (arrival), id, agent, symbol,
                       side, kind, price, qty, status, reason, filled
events                 run_id, tick, seq, kind, target, size REAL, symbols (';'-joined),
                       fair_before REAL, fair_after REAL (currency)
candles                run_id, interval, symbol, start_tick, open, high, low, close, volume,
                       trades, notional (sum price*qty), complete (0: the run ended inside it)
portfolio_snapshots    run_id, tick, agent, kind (index into runs.kinds), cash, equity REAL
portfolio_positions    run_id, tick, agent, symbol, qty (non-zero only)
=====================  ==================================================================

Every data table is ``WITHOUT ROWID`` with its natural key as primary key (e.g. trades
``(run_id, tick, seq)``, candles ``(run_id, interval, symbol, start_tick)``), which is
also the index the queries use; rows arrive in key order, so inserts append.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

SCHEMA_VERSION = 1
"""Version of the schema below; a database with another version is refused."""

APP = "qtg"
DEFAULT_FILE = "qtg.sqlite"
log = logging.getLogger("qtg")


class StorageError(RuntimeError):
    """The run database cannot be opened, written or read; the message is one line."""


# ---------------------------------------------------------------------------------------
# Schema

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "ticks": (
        ("run_id", "INTEGER"), ("tick", "INTEGER"), ("symbol", "INTEGER"),
        ("bid", "INTEGER"), ("ask", "INTEGER"), ("bid_qty", "INTEGER"), ("ask_qty", "INTEGER"),
        ("last", "INTEGER"), ("high", "INTEGER"), ("low", "INTEGER"),
        ("mark", "REAL"), ("fair", "REAL"), ("volume", "INTEGER"),
    ),
    "trades": (
        ("run_id", "INTEGER"), ("tick", "INTEGER"), ("seq", "INTEGER"),
        ("taker_id", "INTEGER"), ("maker_id", "INTEGER"), ("taker_agent", "INTEGER"),
        ("maker_agent", "INTEGER"), ("symbol", "INTEGER"), ("side", "INTEGER"),
        ("price", "INTEGER"), ("qty", "INTEGER"),
    ),
    "orders": (
        ("run_id", "INTEGER"), ("tick", "INTEGER"), ("seq", "INTEGER"),
        ("id", "INTEGER"), ("agent", "INTEGER"), ("symbol", "INTEGER"), ("side", "INTEGER"),
        ("kind", "INTEGER"), ("price", "INTEGER"), ("qty", "INTEGER"),
        ("status", "INTEGER"), ("reason", "INTEGER"), ("filled", "INTEGER"),
    ),
    "events": (
        ("run_id", "INTEGER"), ("tick", "INTEGER"), ("seq", "INTEGER"),
        ("kind", "TEXT"), ("target", "TEXT"), ("size", "REAL"), ("symbols", "TEXT"),
        ("fair_before", "REAL"), ("fair_after", "REAL"),
    ),
    "candles": (
        ("run_id", "INTEGER"), ("interval", "INTEGER"), ("symbol", "INTEGER"),
        ("start_tick", "INTEGER"), ("open", "INTEGER"), ("high", "INTEGER"), ("low", "INTEGER"),
        ("close", "INTEGER"), ("volume", "INTEGER"), ("trades", "INTEGER"),
        ("notional", "INTEGER"), ("complete", "INTEGER"),
    ),
    "portfolio_snapshots": (
        ("run_id", "INTEGER"), ("tick", "INTEGER"), ("agent", "INTEGER"), ("kind", "INTEGER"),
        ("cash", "INTEGER"), ("equity", "REAL"),
    ),
    "portfolio_positions": (
        ("run_id", "INTEGER"), ("tick", "INTEGER"), ("agent", "INTEGER"), ("symbol", "INTEGER"),
        ("qty", "INTEGER"),
    ),
}
"""Data tables: column names and SQLite types, in table order."""

KEYS: dict[str, tuple[str, ...]] = {
    "ticks": ("run_id", "tick", "symbol"),
    "trades": ("run_id", "tick", "seq"),
    "orders": ("run_id", "tick", "seq"),
    "events": ("run_id", "tick", "seq"),
    "candles": ("run_id", "interval", "symbol", "start_tick"),
    "portfolio_snapshots": ("run_id", "tick", "agent"),
    "portfolio_positions": ("run_id", "tick", "agent", "symbol"),
}
"""Primary key of each data table (also its row order)."""

RUNS_DDL = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    started TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER NOT NULL,
    version TEXT NOT NULL,
    symbols TEXT NOT NULL,
    kinds TEXT NOT NULL,
    candles TEXT NOT NULL,
    last_tick INTEGER NOT NULL DEFAULT -1,
    resumed_at TEXT,
    resume_tick INTEGER,
    ended TEXT,
    stop_reason TEXT
)"""


def schema_sql() -> list[str]:
    """The statements that create an empty database of :data:`SCHEMA_VERSION`."""
    out = ["CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)", RUNS_DDL.strip()]
    for table, cols in TABLES.items():
        body = ", ".join(f"{name} {typ} NOT NULL" for name, typ in cols)
        out.append(f"CREATE TABLE {table} ({body}, PRIMARY KEY ({', '.join(KEYS[table])})) WITHOUT ROWID")
    return out


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _check_schema(con: sqlite3.Connection, path: Path) -> None:
    """Raise StorageError unless ``con`` is a qtg database of this schema version."""
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = _tables(con)
    except sqlite3.DatabaseError as e:
        raise StorageError(f"{path}: not a SQLite database ({e})") from None
    if version != SCHEMA_VERSION:
        what = "no schema version" if version == 0 else f"schema version {version}"
        raise StorageError(
            f"{path}: {what} but this qtg reads and writes schema version {SCHEMA_VERSION}; "
            "use another storage.file or run directory"
        )
    if "meta" not in tables or "runs" not in tables:
        raise StorageError(f"{path}: not a qtg run database (no meta/runs tables)")
    app = con.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
    if app is None or app[0] != APP:
        raise StorageError(f"{path}: not a qtg run database (meta.app is {app and app[0]!r})")


def open_database(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) a writable run database: WAL, synchronous=NORMAL,
    autocommit mode (transactions are explicit). Raises StorageError with one line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    except (OSError, sqlite3.Error) as e:
        raise StorageError(f"{path}: cannot open ({e})") from None
    try:
        try:
            fresh = con.execute("PRAGMA user_version").fetchone()[0] == 0 and not _tables(con)
        except sqlite3.DatabaseError as e:
            raise StorageError(f"{path}: not a SQLite database ({e})") from None
        if fresh:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("BEGIN IMMEDIATE")
            for stmt in schema_sql():
                con.execute(stmt)
            con.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("app", APP), ("schema_version", str(SCHEMA_VERSION)), ("created", _now()),
            ])
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.execute("COMMIT")
        _check_schema(con, path)
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        con.close()
        raise
    return con


def _insert_sql(table: str, run_id: int, columns: Sequence[str], replace: bool = False, rows: int = 1) -> str:
    """An INSERT of ``rows`` rows into ``table`` with ``run_id`` as a literal (one
    parameter less per row)."""
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    one = f"({int(run_id)}, {', '.join('?' * len(columns))})"
    return f"{verb} INTO {table} (run_id, {', '.join(columns)}) VALUES {', '.join([one] * rows)}"


# ---------------------------------------------------------------------------------------
# Candles


CANDLE_FIELDS = ("open", "high", "low", "close", "volume", "trades", "notional")
"""Accumulator rows of :class:`Candles` (all int64)."""
_O, _H, _L, _C, _V, _N, _X = range(len(CANDLE_FIELDS))


class Candles:
    """Open candles at several intervals for every symbol: ``acc`` i64[7, I, S] (the rows
    of :data:`CANDLE_FIELDS`; ``trades == 0`` means the candle has no trade yet).

    Candle (interval I, symbol s, start k*I) aggregates the trades with tick in
    [kI, (k+1)I): open/close are the first/last trade's price (by tick, then by order
    within the tick), volume sums qty, trades counts, notional sums price * qty.
    """

    def __init__(self, intervals: Sequence[int], n_symbols: int) -> None:
        self.intervals = np.asarray(intervals, np.int64)  # i64[I]
        self.n_symbols = n_symbols
        self.acc = np.zeros((len(CANDLE_FIELDS), len(self.intervals), n_symbols), np.int64)

    def add(self, symbol: np.ndarray, price: np.ndarray, qty: np.ndarray) -> None:
        """Fold one tick's fills (in the order they happened) into every open candle."""
        if len(qty) == 0:
            return
        order = np.argsort(symbol, kind="stable")  # per symbol, still in fill order
        sym, p, q = symbol[order], price[order].astype(np.int64), qty[order].astype(np.int64)
        starts = np.flatnonzero(np.concatenate([[True], sym[1:] != sym[:-1]]))
        ends = np.append(starts[1:], len(sym))
        s = sym[starts]
        t_open, t_close = p[starts], p[ends - 1]
        t_high, t_low = np.maximum.reduceat(p, starts), np.minimum.reduceat(p, starts)
        t_vol, t_notional = np.add.reduceat(q, starts), np.add.reduceat(p * q, starts)
        t_count = (ends - starts).astype(np.int64)
        a = self.acc[:, :, s]  # [7, I, k] (a copy)
        new = a[_N] == 0
        a[_O] = np.where(new, t_open, a[_O])
        a[_H] = np.where(new, t_high, np.maximum(a[_H], t_high))
        a[_L] = np.where(new, t_low, np.minimum(a[_L], t_low))
        a[_C] = t_close
        a[_V] += t_vol
        a[_N] += t_count
        a[_X] += t_notional
        self.acc[:, :, s] = a

    def close(self, tick: int) -> list[tuple[int, int, np.ndarray]]:
        """After ``tick``: take the candles whose interval ends with it, as
        ``(interval, start_tick, rows i64[8, k])`` (rows: symbol, then CANDLE_FIELDS;
        symbols without trades have no row), and reset them."""
        out = []
        for i in np.flatnonzero((tick + 1) % self.intervals == 0):
            if self._has(i):
                out.append(self._rows(i, tick))
            self._reset(i)
        return out

    def open(self, tick: int) -> list[tuple[int, int, np.ndarray]]:
        """The open candles as of ``tick`` (same format as :meth:`close`), kept open."""
        return [self._rows(i, tick) for i in range(len(self.intervals)) if self._has(i)]

    def _has(self, i: int) -> bool:
        return bool(self.acc[_N, i].any())

    def _rows(self, i: int, tick: int) -> tuple[int, int, np.ndarray]:
        interval = int(self.intervals[i])
        s = np.flatnonzero(self.acc[_N, i] > 0)
        rows = np.concatenate([s[None, :].astype(np.int64), self.acc[:, i, s]])
        return interval, (tick // interval) * interval, rows

    def _reset(self, i: int) -> None:
        self.acc[:, i, :] = 0


# ---------------------------------------------------------------------------------------
# The hook


@dataclasses.dataclass
class _Batch:
    """Ticks handed to the writer at once: per-tick NumPy chunks, converted to rows and
    committed by the writer thread in one transaction."""

    ticks: list[int] = dataclasses.field(default_factory=list)
    book: list[np.ndarray] = dataclasses.field(default_factory=list)  # i64[8, S] per tick
    marks: list[np.ndarray] = dataclasses.field(default_factory=list)  # f64[2, S]: mark, fair
    fill_ticks: list[int] = dataclasses.field(default_factory=list)
    fills: list[np.ndarray] = dataclasses.field(default_factory=list)  # i64[8, F] per tick
    order_ticks: list[int] = dataclasses.field(default_factory=list)
    orders: list[np.ndarray] = dataclasses.field(default_factory=list)  # i64[10, A]
    events: list[tuple[int, np.ndarray]] = dataclasses.field(default_factory=list)
    candles: list[tuple[int, int, np.ndarray, int]] = dataclasses.field(default_factory=list)
    portfolio: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)
    end: tuple[str, str | None] | None = None  # (ended, stop_reason) on the last batch
    last_tick: int = -1


BOOK_COLUMNS = ("bid", "ask", "bid_qty", "ask_qty", "last", "high", "low", "volume")
FILL_COLUMNS = ("taker_id", "maker_id", "taker_agent", "maker_agent", "symbol", "side", "price", "qty")
ORDER_COLUMNS = ("id", "agent", "symbol", "side", "kind", "price", "qty")
OUTCOME_COLUMNS = ("status", "reason", "filled")


class Storage:
    """The ``storage`` hook: writes the run into the SQLite database at ``path``.

    ``cfg`` is a :class:`qtg.core.config.StorageConfig`; ``config`` (plain data) and ``seed``
    go into the ``runs`` row. See the module docstring for the schema.
    """

    name = "storage"

    def __init__(self, path: str | Path, cfg: Any, config: dict | None = None, seed: int = 0) -> None:
        self.path = Path(path)
        self.cfg = cfg
        self.config = config or {}
        self.seed = int(seed)
        self.run_id: int | None = None
        self.last_tick = -1  # the last tick accepted by on_tick
        self._resume: dict | None = None
        self._started = False
        self._candles: Candles | None = None
        self._pending = _Batch()
        self._queue: queue.Queue | None = None
        self._writer: threading.Thread | None = None
        self._con: sqlite3.Connection | None = None
        self._error: BaseException | None = None
        self._reported = False
        self.committed_tick = -1
        self.rows = 0
        self.batches = 0
        self.writer_seconds = 0.0

    # -- lifecycle -----------------------------------------------------------------------

    def load_state_dict(self, d: dict) -> None:
        """Continue the run of a snapshot: ``on_start`` will cut that run's rows back to
        ``d["tick"]`` and restore the open candles."""
        self._resume = d

    def check(self) -> None:
        """Refuse, before the run writes anything, a database this hook could not go on
        with: a file that is not SQLite or not a qtg run database of this schema version,
        or (resuming) a run stored with other candle intervals. Reads only; a missing
        file is fine (``on_start`` creates it). Raises StorageError with one line."""
        if self._resume is not None:
            saved = [int(x) for x in np.asarray(self._resume["intervals"]).tolist()]
            intervals = [int(x) for x in self.cfg.candles]
            if saved != intervals:
                raise StorageError(f"storage.candles: the snapshot's run stored candles {saved}, "
                                   f"got {intervals}; keep the same intervals to resume")
        if not self.path.exists():
            return
        if not self.path.is_file():
            raise StorageError(f"{self.path}: not a file; storage.file must name a database file")
        try:
            con = sqlite3.connect(self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30.0)
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: cannot open ({e})") from None
        try:
            try:
                fresh = con.execute("PRAGMA user_version").fetchone()[0] == 0 and not _tables(con)
            except sqlite3.DatabaseError as e:
                raise StorageError(f"{self.path}: not a SQLite database ({e}); use another storage.file "
                                   "or run directory") from None
            if not fresh:
                _check_schema(con, self.path)
        finally:
            con.close()

    def on_start(self, sim) -> None:
        """Open or create the database and start the writer thread. A fresh hook adds a
        ``runs`` row; one loaded with a snapshot's state cuts its run back to the
        snapshot's tick; one that already ran goes on with the same run."""
        if self._started:
            raise StorageError(f"{self.path}: on_start called again before on_end")
        st = sim.static
        self._symbols, self._sectors, self._sector_of = st.symbols, st.sectors, st.sector_of
        self._kind_of = np.zeros(st.n_agents, np.int64)
        for j, k in enumerate(st.kinds):
            self._kind_of[k.start : k.stop] = j
        intervals = [int(x) for x in self.cfg.candles]
        con = open_database(self.path)
        try:
            if self._resume is not None:
                self._restore(con, sim, self._resume, intervals)
                self._resume = None
            elif self.run_id is not None and self._run_exists(con, self.run_id):
                pass  # a later Simulation.run of the same run: go on where it stopped
            else:
                self._candles = Candles(intervals, st.n_symbols)
                self.run_id = self._insert_run(con, sim, intervals)
                self.last_tick = sim.tick - 1
            if self._candles is None or self._candles.n_symbols != st.n_symbols:
                self._candles = Candles(intervals, st.n_symbols)
        except BaseException:
            con.close()
            raise
        self._con = con
        self.committed_tick = self.last_tick
        self._error, self._reported = None, False
        self._pending = _Batch()
        self._queue = queue.Queue(maxsize=max(1, int(self.cfg.queue_batches)))
        self._writer = threading.Thread(target=self._write_loop, name="qtg-storage", daemon=False)
        self._writer.start()
        self._started = True

    def on_tick(self, sim, r) -> None:
        """Copy the tick's columns into the pending batch (whole arrays, no per-row
        Python), fold its fills into the open candles, and hand the batch to the writer
        every ``batch_ticks`` ticks (waiting while the queue is full)."""
        self._raise_error()
        t = int(r.tick)
        p = self._pending
        p.ticks.append(t)
        # Copies: the market arrays are views of device buffers the next tick may reuse.
        p.book.append(np.stack([r.bid, r.ask, r.bid_qty, r.ask_qty, r.last, r.high, r.low, r.volume]))
        p.marks.append(np.stack([r.marks, r.fair]).astype(np.float64, copy=False))
        f = r.fills
        if len(f):
            p.fill_ticks.append(t)
            p.fills.append(np.stack([getattr(f, c) for c in FILL_COLUMNS]).astype(np.int64, copy=False))
            self._candles.add(f.symbol, f.price, f.qty)
        if self.cfg.orders and len(r.orders):
            o, out = r.orders, r.outcomes
            p.order_ticks.append(t)
            p.orders.append(np.stack([getattr(o, c) for c in ORDER_COLUMNS]
                                     + [getattr(out, c) for c in OUTCOME_COLUMNS]).astype(np.int64, copy=False))
        if (np.asarray(r.events)[0] > 0).any():
            p.events.append((t, np.array(r.events)))
        for interval, start, rows in self._candles.close(t):
            p.candles.append((interval, start, rows, 1))
        every = int(self.cfg.portfolio_every)
        if every and t % every == 0:
            p.portfolio.append(self._portfolio(sim, t))
        self.last_tick = p.last_tick = t
        if len(p.ticks) >= self.cfg.batch_ticks:
            self._submit()

    def on_end(self, sim) -> None:
        """Hand over everything pending plus the open candles (``complete = 0``), stop
        and join the writer (it checkpoints the WAL and closes the database)."""
        if not self._started:
            return
        self._started = False
        try:
            if self._error is None:
                p = self._pending
                for interval, start, rows in self._candles.open(self.last_tick):
                    p.candles.append((interval, start, rows, 0))
                p.end = (_now(), getattr(sim, "stop_reason", None))
                p.last_tick = self.last_tick
                self._submit()
        finally:
            if self._writer.is_alive():
                self._put(None)  # the writer commits what it holds, checkpoints and closes
                self._writer.join()
            self._pending = _Batch()
            self._writer, self._con = None, None
        self._raise_error()

    def state_dict(self) -> dict:
        """Flush: hand over the pending ticks, wait until the writer has committed them,
        and return the cursor: run id, last tick stored, the open candles, counters."""
        if self._started:
            if self._pending.ticks:
                self._submit()
            self._queue.join()
        self._raise_error(always=True)
        acc = self._candles.acc.copy() if self._candles is not None else np.zeros((len(CANDLE_FIELDS), 0, 0), np.int64)
        return {
            "run_id": -1 if self.run_id is None else int(self.run_id),
            "tick": int(self.last_tick),
            "intervals": np.asarray([int(x) for x in self.cfg.candles], np.int64),
            "candles": acc,
            "rows": int(self.rows),
            "batches": int(self.batches),
            "writer_seconds": float(self.writer_seconds),
        }

    def summary(self) -> dict:
        """File, size in bytes (with the WAL), rows written, batches, writer time, rows/s."""
        size = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal")) if p.exists())
        return {
            "file": str(self.path),
            "bytes": int(size),
            "rows": int(self.rows),
            "batches": int(self.batches),
            "writer_seconds": round(self.writer_seconds, 3),
            "rows_per_s": round(self.rows / self.writer_seconds, 1) if self.writer_seconds > 0 else 0.0,
        }

    # -- the simulation side -------------------------------------------------------------

    def _portfolio(self, sim, tick: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """Every agent's cash, equity and positions after ``tick`` (copies)."""
        from systems.measure import equity

        w = sim.state.wallet
        return (tick, np.array(w.cash, np.int64), np.array(equity(sim.state), np.float64),
                np.array(w.position, np.int64))

    def _submit(self) -> None:
        batch = self._pending
        batch.last_tick = self.last_tick
        self._put(batch)
        # Only once the writer has it: a put interrupted by Ctrl-C leaves it pending, so
        # on_end still hands it over.
        self._pending = _Batch()

    def _put(self, item) -> None:
        """Enqueue for the writer; waits while the queue is full (never drops)."""
        while True:
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                if not self._writer.is_alive():
                    raise StorageError(f"{self.path}: the writer thread stopped") from None

    def _raise_error(self, always: bool = False) -> None:
        """Raise the writer's error as StorageError (once, unless ``always``)."""
        if self._error is not None and (always or not self._reported):
            self._reported = True
            e = self._error
            raise StorageError(f"{self.path}: writing failed: {type(e).__name__}: {e}") from e

    # -- setup (main thread, before the writer starts) -----------------------------------

    @staticmethod
    def _run_exists(con: sqlite3.Connection, run_id: int) -> bool:
        return con.execute("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)).fetchone() is not None

    def _insert_run(self, con: sqlite3.Connection, sim, intervals: list[int]) -> int:
        import qtg

        st = sim.static
        kinds = [{"name": k.name, "start": k.start, "stop": k.stop} for k in st.kinds]
        cur = con.execute(
            "INSERT INTO runs (started, config, seed, version, symbols, kinds, candles, last_tick) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (_now(), json.dumps(self.config, default=str), self.seed, qtg.__version__,
             json.dumps(list(st.symbols)), json.dumps(kinds), json.dumps(intervals), sim.tick - 1),
        )
        return int(cur.lastrowid)

    def _restore(self, con: sqlite3.Connection, sim, d: dict, intervals: list[int]) -> None:
        """Cut the snapshot's run back to ``d["tick"]`` in one transaction and restore
        the open candles; a missing run (a new file) starts a fresh run row."""
        tick = int(d["tick"])
        if sim.tick != tick + 1:
            raise StorageError(f"{self.path}: the storage cursor is at tick {tick} but the simulation "
                               f"resumes at tick {sim.tick}; the snapshot is inconsistent")
        saved = [int(x) for x in np.asarray(d["intervals"]).tolist()]
        if saved != intervals:
            raise StorageError(f"storage.candles: the snapshot's run stored candles {saved}, "
                               f"got {intervals}; keep the same intervals to resume")
        self._candles = Candles(intervals, sim.static.n_symbols)
        acc = np.asarray(d["candles"], np.int64)
        if acc.shape != self._candles.acc.shape:
            raise StorageError(f"{self.path}: the snapshot's open candles have shape {acc.shape}, "
                               f"expected {self._candles.acc.shape}")
        self._candles.acc[...] = acc
        self.rows, self.batches = int(d.get("rows", 0)), int(d.get("batches", 0))
        self.writer_seconds = float(d.get("writer_seconds", 0.0))
        self.last_tick = tick
        run_id = int(d["run_id"])
        if run_id < 0 or not self._run_exists(con, run_id):
            log.warning("%s: no run %d to resume; storing the rest of the run as a new run", self.path, run_id)
            self.run_id = self._insert_run(con, sim, intervals)
            con.execute("UPDATE runs SET resumed_at = ?, resume_tick = ? WHERE id = ?",
                        (_now(), tick, self.run_id))
            return
        stored = con.execute("SELECT last_tick FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
        if stored < tick:
            log.warning("%s: run %d is stored through tick %d only; ticks %d..%d are missing",
                        self.path, run_id, stored, stored + 1, tick)
        self.run_id = run_id
        con.execute("BEGIN IMMEDIATE")
        try:
            for table in ("ticks", "trades", "orders", "events", "portfolio_snapshots", "portfolio_positions"):
                con.execute(f"DELETE FROM {table} WHERE run_id = ? AND tick > ?", (run_id, tick))
            # Candles still open at the cut (restored from d) and any that started later.
            con.execute("DELETE FROM candles WHERE run_id = ? AND start_tick + interval - 1 > ?", (run_id, tick))
            con.execute("UPDATE runs SET last_tick = ?, resumed_at = ?, resume_tick = ?, ended = NULL, "
                        "stop_reason = NULL WHERE id = ?", (tick, _now(), tick, run_id))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    # -- the writer thread ---------------------------------------------------------------

    def _write_loop(self) -> None:
        con = self._con
        try:
            while True:
                try:
                    batch = self._queue.get(timeout=1.0)
                except queue.Empty:
                    # The main thread is gone without on_end (a hook used by hand): stop,
                    # so the interpreter can exit; everything handed over is committed.
                    if not threading.main_thread().is_alive():
                        return
                    continue
                try:
                    if batch is None:
                        return
                    if self._error is None:
                        t0 = time.perf_counter()
                        n = self._write(con, batch)
                        self.writer_seconds += time.perf_counter() - t0
                        self.rows += n
                        self.batches += 1
                        self.committed_tick = batch.last_tick
                except BaseException as e:  # noqa: BLE001 - surfaced by on_tick / on_end
                    self._error = e
                finally:
                    self._queue.task_done()
        finally:
            try:
                if self._error is None:
                    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as e:
                self._error = self._error or e
            finally:
                con.close()

    def _write(self, con: sqlite3.Connection, b: _Batch) -> int:
        """Commit one batch in one transaction; returns the rows written."""
        run_id = self.run_id
        n = 0
        con.execute("BEGIN IMMEDIATE")
        try:
            for table, names, columns, replace in self._tables(b):
                n += insert_rows(con, table, run_id, names, columns, replace)
            con.execute("UPDATE runs SET last_tick = ? WHERE id = ?", (b.last_tick, run_id))
            if b.end is not None:
                con.execute("UPDATE runs SET ended = ?, stop_reason = ? WHERE id = ?", (*b.end, run_id))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        return n

    def _tables(self, b: _Batch) -> Iterable[tuple[str, Sequence[str], list[np.ndarray], bool]]:
        """Each table's rows as columns (table, column names, NumPy columns, replace),
        assembled from the batch's per-tick chunks with whole-array operations."""
        if b.ticks:
            book = np.stack(b.book)  # [T, 8, S]
            t_n, _, s_n = book.shape
            marks = np.stack(b.marks)  # [T, 2, S]
            cols = [np.repeat(np.asarray(b.ticks, np.int64), s_n), np.tile(np.arange(s_n, dtype=np.int64), t_n),
                    *book.transpose(1, 0, 2).reshape(len(BOOK_COLUMNS), -1),
                    *marks.transpose(1, 0, 2).reshape(2, -1)]
            yield "ticks", ("tick", "symbol", *BOOK_COLUMNS, "mark", "fair"), cols, False
        if b.fills:
            yield "trades", ("tick", "seq", *FILL_COLUMNS), _seq_columns(b.fill_ticks, b.fills), False
        if b.orders:
            names = ("tick", "seq", *ORDER_COLUMNS, *OUTCOME_COLUMNS)
            yield "orders", names, _seq_columns(b.order_ticks, b.orders), False
        if b.events:
            from qtg.core.news import event_rows

            rows = []
            for tick, ev in b.events:
                for seq, (t, *rest) in enumerate(event_rows(ev, tick, self._symbols, self._sectors, self._sector_of)):
                    rows.append((t, seq, *rest))
            if rows:
                names = [c for c, _ in TABLES["events"][1:]]
                yield "events", names, [np.array(c, dtype=object) for c in zip(*rows)], False
        if b.candles:
            blocks = []
            for interval, start, vals, complete in b.candles:
                k = vals.shape[1]
                blocks.append(np.concatenate([np.full((1, k), interval), vals[:1], np.full((1, k), start),
                                              vals[1:], np.full((1, k), complete)]))
            names = ("interval", "symbol", "start_tick", *CANDLE_FIELDS, "complete")
            # A partial candle written when a run stopped is replaced when it goes on.
            yield "candles", names, list(np.concatenate(blocks, axis=1)), True
        if b.portfolio:
            snaps, positions = [], []
            for tick, cash, eq, pos in b.portfolio:
                n = len(cash)
                snaps.append((np.full(n, tick), np.arange(n), self._kind_of[:n], cash, eq))
                a, s = np.nonzero(pos)
                positions.append(np.stack([np.full(len(a), tick), a, s, pos[a, s]]))
            cols = [np.concatenate([x[j] for x in snaps]) for j in range(5)]
            yield "portfolio_snapshots", ("tick", "agent", "kind", "cash", "equity"), cols, False
            pos = np.concatenate(positions, axis=1)
            if pos.shape[1]:
                yield "portfolio_positions", ("tick", "agent", "symbol", "qty"), list(pos), False


def _seq_columns(ticks: list[int], chunks: list[np.ndarray]) -> list[np.ndarray]:
    """Columns (tick, seq, *chunk rows) from per-tick column chunks [C, n_t]."""
    counts = np.fromiter((c.shape[1] for c in chunks), np.int64, len(chunks))
    data = np.concatenate(chunks, axis=1)  # [C, F]
    tick = np.repeat(np.asarray(ticks, np.int64), counts)
    seq = np.arange(data.shape[1]) - np.repeat(np.cumsum(counts) - counts, counts)
    return [tick, seq, *data]


ROWS_PER_STATEMENT = 64
"""Rows bound to one multi-row INSERT: one statement step (and one GIL release) per 64
rows instead of per row, which halves the writer's time and its GIL traffic."""


def insert_rows(con: sqlite3.Connection, table: str, run_id: int, names: Sequence[str],
                columns: Sequence[np.ndarray], replace: bool = False) -> int:
    """Insert the rows given as equal-length NumPy ``columns`` (named ``names``) into
    ``table`` for ``run_id``, ROWS_PER_STATEMENT rows per statement. Returns the rows."""
    n = len(columns[0])
    if n == 0:
        return 0
    if all(np.issubdtype(c.dtype, np.integer) for c in columns):
        m = np.stack(columns, axis=1).astype(np.int64, copy=False)  # [n, C]
    else:  # mixed INTEGER / REAL / TEXT: Python scalars per column
        m = np.empty((n, len(columns)), object)
        for j, c in enumerate(columns):
            m[:, j] = c.astype(object) if c.dtype != object else c
    k = ROWS_PER_STATEMENT
    full = n // k * k
    if full:
        con.executemany(_insert_sql(table, run_id, names, replace, k), m[:full].reshape(-1, k * m.shape[1]).tolist())
    if n > full:
        con.executemany(_insert_sql(table, run_id, names, replace, 1), m[full:].tolist())
    return n


# ---------------------------------------------------------------------------------------
# Reading


def find_database(path_or_run_dir: str | Path) -> Path:
    """The database file: the path itself, or ``qtg.sqlite`` (else the only ``*.sqlite``)
    in a run directory. Raises StorageError when there is none."""
    p = Path(path_or_run_dir)
    if p.is_dir():
        if (p / DEFAULT_FILE).is_file():
            return p / DEFAULT_FILE
        found = sorted(p.glob("*.sqlite"))
        if len(found) == 1:
            return found[0]
        raise StorageError(f"{p}: no run database ({DEFAULT_FILE}) in this directory"
                           + (f"; found {', '.join(f.name for f in found)}" if found else ""))
    if not p.is_file():
        raise StorageError(f"{p}: no run database (no such file or directory)")
    return p


Ticks = int | tuple[int, int] | None
"""A tick selection: None (all), one tick, or a half-open range (lo, hi)."""


class RunDB:
    """Read-only queries on a run database (SQLite URI ``mode=ro``; safe while a run is
    writing it).

    Every query returns a dict of NumPy columns (int64 for INTEGER, float64 for REAL,
    object arrays of str for TEXT), in key order. ``run_id=None`` means the newest run
    in the file. Symbol arguments take a name or an index; symbol COLUMNS hold the index
    into :meth:`symbols` (``db.symbols()[col]`` gives names). Prices and cash are in
    units (1/10,000 of the currency), quantities in shares.
    """

    def __init__(self, path_or_run_dir: str | Path) -> None:
        self.path = find_database(path_or_run_dir)
        uri = self.path.resolve().as_uri() + "?mode=ro"
        try:
            self.con = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=30.0)
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: cannot open ({e})") from None
        try:
            _check_schema(self.con, self.path)
        except BaseException:
            self.con.close()
            raise

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "RunDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- runs ------------------------------------------------------------------------

    def runs(self) -> list[dict]:
        """Every run: id, started, seed, version, config (dict), symbols, kinds, candles,
        last_tick, resumed_at, resume_tick, ended, stop_reason."""
        cur = self.con.execute("SELECT * FROM runs ORDER BY id")
        names = [c[0] for c in cur.description]
        out = []
        for row in cur.fetchall():
            r = dict(zip(names, row))
            for key in ("config", "symbols", "kinds", "candles"):
                r[key] = json.loads(r[key])
            out.append(r)
        return out

    def run_id(self, run_id: int | None = None) -> int:
        """``run_id`` checked, or the newest run's id."""
        if run_id is None:
            row = self.con.execute("SELECT max(id) FROM runs").fetchone()
            if row[0] is None:
                raise StorageError(f"{self.path}: holds no run yet")
            return int(row[0])
        if self.con.execute("SELECT 1 FROM runs WHERE id = ?", (int(run_id),)).fetchone() is None:
            raise StorageError(f"{self.path}: no run {run_id}")
        return int(run_id)

    def _run(self, run_id: int | None) -> dict:
        rid = self.run_id(run_id)
        return next(r for r in self.runs() if r["id"] == rid)

    def last_tick(self, run_id: int | None = None) -> int:
        """The last tick committed (-1: none yet)."""
        rid = self.run_id(run_id)
        return int(self.con.execute("SELECT last_tick FROM runs WHERE id = ?", (rid,)).fetchone()[0])

    def symbols(self, run_id: int | None = None) -> list[str]:
        """Symbol names; symbol columns index this list."""
        return list(self._run(run_id)["symbols"])

    def kinds(self, run_id: int | None = None) -> list[dict]:
        """Strategy kinds (name, start, stop); portfolio ``kind`` columns index this list."""
        return list(self._run(run_id)["kinds"])

    # -- tables ----------------------------------------------------------------------

    def trades(self, symbol: str | int | None = None, ticks: Ticks = None, run_id: int | None = None) -> dict:
        """Fills in the order they happened: tick, seq, taker_id, maker_id, taker_agent,
        maker_agent, symbol, side (taker's), price, qty."""
        return self._select("trades", run_id, symbol=symbol, ticks=ticks)

    def ticks(self, symbol: str | int | None = None, ticks: Ticks = None, run_id: int | None = None) -> dict:
        """Per tick and symbol: book tops, the tick bar (last, high, low, volume), mark
        and fair value (REAL units)."""
        return self._select("ticks", run_id, symbol=symbol, ticks=ticks)

    def orders(self, symbol: str | int | None = None, ticks: Ticks = None, run_id: int | None = None) -> dict:
        """The orders the engine saw (runs with ``storage.orders``), in arrival order."""
        return self._select("orders", run_id, symbol=symbol, ticks=ticks)

    def candles(self, interval: int, symbol: str | int | None = None, run_id: int | None = None,
                complete: bool | None = None) -> dict:
        """Candles of ``interval`` ticks: symbol, start_tick, open, high, low, close,
        volume, trades, notional, complete. ``complete``: only complete (True) or only
        partial (False) candles."""
        where, params = ["interval = ?"], [int(interval)]
        if complete is not None:
            where.append("complete = ?")
            params.append(int(bool(complete)))
        return self._select("candles", run_id, symbol=symbol, where=where, params=params)

    def events(self, ticks: Ticks = None, run_id: int | None = None) -> dict:
        """News events: tick, seq, kind, target, size, symbols, fair_before, fair_after
        (the events.csv format of ``qtg.core.news.event_rows``; currency)."""
        return self._select("events", run_id, ticks=ticks)

    def portfolio(self, tick: int | None = None, run_id: int | None = None) -> dict:
        """Portfolio snapshots (every ``storage.portfolio_every`` ticks): tick, agent,
        kind, cash (units), equity (REAL units). ``tick``: one snapshot, else all."""
        return self._select("portfolio_snapshots", run_id, ticks=tick)

    def positions(self, tick: int | None = None, run_id: int | None = None) -> dict:
        """Non-zero positions at the portfolio snapshots: tick, agent, symbol, qty."""
        return self._select("portfolio_positions", run_id, ticks=tick)

    def sql(self, query: str, params: Sequence | dict = ()) -> dict:
        """Any read-only query: a dict of NumPy columns named as the query names them."""
        try:
            cur = self.con.execute(query, params)
        except sqlite3.Error as e:
            raise StorageError(f"{self.path}: {e}") from None
        names = [c[0] for c in cur.description or ()]
        rows = cur.fetchall()
        cols = list(zip(*rows)) if rows else [() for _ in names]
        return {n: _column(c) for n, c in zip(names, cols)}

    # -- helpers ---------------------------------------------------------------------

    def _symbol_index(self, symbol: str | int, run_id: int) -> int:
        names = self.symbols(run_id)
        if isinstance(symbol, str):
            if symbol not in names:
                raise StorageError(f"unknown symbol {symbol!r}; the run has {', '.join(names)}")
            return names.index(symbol)
        if not 0 <= int(symbol) < len(names):
            raise StorageError(f"symbol index {symbol} out of range (the run has {len(names)} symbols)")
        return int(symbol)

    def _select(self, table: str, run_id: int | None, symbol=None, ticks: Ticks = None,
                where: list[str] | None = None, params: list | None = None) -> dict:
        rid = self.run_id(run_id)
        where, params = ["run_id = ?", *(where or [])], [rid, *(params or [])]
        if symbol is not None:
            where.append("symbol = ?")
            params.append(self._symbol_index(symbol, rid))
        if ticks is not None:
            if isinstance(ticks, tuple):
                where.append("tick >= ? AND tick < ?")
                params.extend(int(x) for x in ticks)
            else:
                where.append("tick = ?")
                params.append(int(ticks))
        cols = [(c, t) for c, t in TABLES[table] if c != "run_id"]
        order = ", ".join(k for k in KEYS[table] if k != "run_id")
        query = (f"SELECT {', '.join(c for c, _ in cols)} FROM {table} "
                 f"WHERE {' AND '.join(where)} ORDER BY {order}")
        rows = self.con.execute(query, params).fetchall()
        data = list(zip(*rows)) if rows else [()] * len(cols)
        dtypes = {"INTEGER": np.int64, "REAL": np.float64, "TEXT": object}
        return {c: np.array(v, dtype=dtypes[t]) for (c, t), v in zip(cols, data)}


def _column(values: Sequence) -> np.ndarray:
    """A query column as NumPy: int64, float64, or object (text, NULLs, mixed)."""
    kinds = {type(v) for v in values}
    if kinds <= {int}:
        return np.array(values, np.int64)
    if kinds <= {int, float}:
        return np.array(values, np.float64)
    return np.array(values, object)


__all__ = [
    "SCHEMA_VERSION", "TABLES", "KEYS", "Candles", "RunDB", "Storage", "StorageError",
    "find_database", "open_database", "schema_sql",
]
