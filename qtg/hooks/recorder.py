"""The run's in-memory history behind the summary and charts, and the fill hash."""

from __future__ import annotations

import hashlib

import numpy as np

from qtg.core.news import event_rows
from qtg.core.sim import Simulation, TickResult


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
        self.events: list[tuple] = []  # events.csv rows (qtg.core.news.event_rows)
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
