"""Hooks: observers of the run. The simulation calls them; it never imports them."""

from __future__ import annotations

import hashlib

import numpy as np

from qtg.sim import Simulation, TickResult
from systems.fundamentals import event_rows


class Recorder:
    """Keeps a per-tick history of the market and the run's totals, and hashes every fill.

    Memory is O(ticks x symbols); fills themselves are hashed, not kept.
    """

    FILL_FIELDS = ("taker_id", "maker_id", "taker_agent", "maker_agent", "symbol", "side", "price", "qty")

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
        self._hash = hashlib.blake2b(digest_size=16)

    def on_start(self, sim: Simulation) -> None:
        self.notional = np.zeros(sim.static.n_symbols, np.int64)
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
        for name in self.FILL_FIELDS:
            self._hash.update(np.ascontiguousarray(getattr(r.fills, name)).tobytes())

    def on_end(self, sim: Simulation) -> None:
        pass

    @property
    def fill_hash(self) -> str:
        """Digest of every fill of the run, in order: equal runs give equal hashes."""
        return self._hash.hexdigest()

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
    """A tqdm progress bar showing the last price and fills so far."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.enabled = total, enabled
        self._bar = None
        self._fills = 0

    def on_start(self, sim: Simulation) -> None:
        if self.enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, unit="tick", dynamic_ncols=True, mininterval=0.25)

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
