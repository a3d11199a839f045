"""Slippage and market impact of aggressive orders: a hook that reads every tick's match.

:class:`ImpactRecorder` looks at the orders the engine saw each tick
(``sim.host.last_orders``, arrival order) and their outcomes
(``sim.host.last_match.outcomes``, aligned rows) and measures every accepted order that
takes liquidity on arrival:

* every MARKET order;
* every *marketable* LIMIT or IOC order: a buy priced at or above the best ask on
  arrival, a sell at or below the best bid (an empty opposite side never crosses).

POST_ONLY, CANCEL and MODIFY rows are never counted, nor rejected rows. For each order:

``avg_price``       ``filled_value / filled`` (units; NaN when nothing filled)
``mid``             ``(arrival_bid + arrival_ask) / 2`` (NaN when either side was empty)
``slippage_bps``    paying worse than the mid is positive: buy ``(avg - mid) / mid * 1e4``,
                    sell ``(mid - avg) / mid * 1e4`` (NaN without a fill or a mid)
``size_over_depth`` ``qty / arrival_depth``, the order's size over all the shares resting
                    on the side it takes from (inf when that side was empty)

Memory is bounded: counts, sums and the least-squares moments are exact running totals
over the whole run; the per-order records behind the medians, the CSV and the plot are a
uniform reservoir sample of at most ``capacity`` orders (all of them while the run has
fewer), drawn with a fixed seed so equal runs keep equal samples.
"""

from __future__ import annotations

import csv
import math

import numpy as np

from components.money import SCALE
from components.orders import OrderType, Side, Status
from qtg.core.files import atomic_open, save_figure

SIZE_EDGES: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0)
"""Bucket edges of size over depth; bucket ``k`` holds ``edges[k-1] <= x < edges[k]``."""

RECORD = np.dtype(
    [
        ("seq", np.int64),  # order number in the run (0-based, among measured orders)
        ("tick", np.int64),
        ("agent", np.int32),
        ("symbol", np.int32),
        ("side", np.int8),
        ("kind", np.int8),
        ("qty", np.int64),  # shares
        ("filled", np.int64),  # shares
        ("avg_price", np.float64),  # units
        ("mid", np.float64),  # units
        ("slippage_bps", np.float64),
        ("size_over_depth", np.float64),
    ]
)
"""One measured order."""

CSV_COLUMNS = ("tick", "agent", "symbol", "side", "kind", "qty", "filled",
               "avg_price", "mid", "slippage_bps", "size_over_depth")

_MARKET, _LIMIT, _IOC = int(OrderType.MARKET), int(OrderType.LIMIT), int(OrderType.IOC)
_BUY = int(Side.BUY)


def bucket_labels(edges=SIZE_EDGES) -> list[str]:
    """``['<0.01', '0.01-0.03', ..., '0.3-1', '>=1']`` for ``edges``."""
    e = [f"{x:g}" for x in edges]
    return [f"<{e[0]}", *(f"{a}-{b}" for a, b in zip(e[:-1], e[1:])), f">={e[-1]}"]


def measure(orders, outcomes, tick: int = 0) -> np.ndarray:
    """The measured orders of one engine batch as :data:`RECORD` rows (``seq`` 0).

    Args:
        orders: OrderBatch the engine processed (host arrays, ``[B]``).
        outcomes: its Outcomes, aligned with ``orders``.
        tick: stamped on every record.
    """
    kind = np.asarray(orders.kind)
    side = np.asarray(orders.side)
    price = np.asarray(orders.price)
    status = np.asarray(outcomes.status)
    bid = np.asarray(outcomes.arrival_bid)
    ask = np.asarray(outcomes.arrival_ask)
    accepted = np.asarray(orders.valid) & (status != int(Status.NONE)) & (status != int(Status.REJECTED))
    buy = side == _BUY
    crossed = np.where(buy, (ask > 0) & (price >= ask), (bid > 0) & (price <= bid))
    take = accepted & ((kind == _MARKET) | (((kind == _LIMIT) | (kind == _IOC)) & crossed))
    idx = np.flatnonzero(take)

    rec = np.zeros(idx.shape[0], RECORD)
    rec["tick"] = tick
    for name in ("agent", "symbol", "side", "kind", "qty"):
        rec[name] = np.asarray(getattr(orders, name))[idx]
    filled = np.asarray(outcomes.filled)[idx]
    value = np.asarray(outcomes.filled_value)[idx]
    b, a = bid[idx], ask[idx]
    depth = np.asarray(outcomes.arrival_depth)[idx]
    rec["filled"] = filled
    with np.errstate(divide="ignore", invalid="ignore"):
        avg = np.where(filled > 0, value / np.maximum(filled, 1), np.nan)
        mid = np.where((b > 0) & (a > 0), (b + a) / 2.0, np.nan)
        sign = np.where(rec["side"] == _BUY, 1.0, -1.0)
        rec["avg_price"] = avg
        rec["mid"] = mid
        rec["slippage_bps"] = sign * (avg - mid) / mid * 1e4
        rec["size_over_depth"] = np.where(depth > 0, rec["qty"] / np.maximum(depth, 1), np.inf)
    return rec


class ImpactRecorder:
    """A hook measuring fills, average prices and slippage of aggressive orders.

    Args:
        capacity: most per-order records kept (a uniform reservoir sample of the run).
        edges: bucket edges of size over depth (ascending).
        seed: seed of the reservoir sampling.
    """

    name = "impact"

    def __init__(self, capacity: int = 200_000, edges=SIZE_EDGES, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.edges = np.asarray(edges, np.float64)
        if self.edges.ndim != 1 or np.any(np.diff(self.edges) <= 0):
            raise ValueError(f"edges must be ascending, got {edges!r}")
        self.symbols: tuple[str, ...] = ()
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._sample = np.zeros(0, RECORD)
        self._kept = 0
        nb = self.edges.shape[0] + 1
        # Exact running totals over every measured order.
        self.n = 0  # measured orders
        self.n_full = 0
        self.n_partial = 0
        self.n_unfilled = 0
        self.by_kind = {"market": 0, "limit": 0, "ioc": 0}
        self.qty = 0  # shares asked
        self.filled = 0  # shares filled
        self.n_slip = 0  # orders with a slippage (a fill and a two-sided book)
        self.slip_sum = 0.0
        self.slip_qty_sum = 0.0  # sum of slippage * filled shares
        self.slip_qty = 0  # filled shares of those orders
        self.b_orders = np.zeros(nb, np.int64)  # per size bucket: measured orders
        self.b_qty = np.zeros(nb, np.int64)
        self.b_filled = np.zeros(nb, np.int64)
        self.b_n = np.zeros(nb, np.int64)  # ... with a slippage
        self.b_sum = np.zeros(nb, np.float64)
        # Moments of (x = sqrt(size/depth), y = slippage), merged batch by batch.
        self._fit_n = 0
        self._mx = self._my = 0.0
        self._cxx = self._cxy = self._cyy = 0.0

    # ------------------------------------------------------------------ hook
    def on_start(self, sim) -> None:
        static = getattr(sim, "static", None)
        self.symbols = tuple(getattr(static, "symbols", ()) or ())

    def on_tick(self, sim, result) -> None:
        host = sim.host
        if host.last_orders is None or host.last_match is None:
            return
        tick = int(getattr(result, "tick", 0) or 0)
        self.add(measure(host.last_orders, host.last_match.outcomes, tick))

    def on_end(self, sim) -> None:
        pass

    # ------------------------------------------------------------------ save / resume
    _TOTALS = ("n", "n_full", "n_partial", "n_unfilled", "qty", "filled", "n_slip", "slip_sum",
               "slip_qty_sum", "slip_qty", "_kept", "_fit_n", "_mx", "_my", "_cxx", "_cxy", "_cyy")
    _BUCKETS = ("b_orders", "b_qty", "b_filled", "b_n", "b_sum")

    def state_dict(self) -> dict:
        """Running totals, bucket sums, moments, the kept sample (one array per
        :data:`RECORD` field) and the sampler's generator state, so a resumed run keeps
        the same sample and totals as an uninterrupted one."""
        kept = self._sample[: self._kept]
        rng = self._rng.bit_generator.state
        return {
            "capacity": self.capacity,
            "edges": self.edges.copy(),
            "totals": {k: getattr(self, k) for k in self._TOTALS},
            "by_kind": dict(self.by_kind),
            "buckets": {k: getattr(self, k).copy() for k in self._BUCKETS},
            "sample": {f: kept[f].copy() for f in RECORD.names},
            # PCG64's 128-bit state and increment, as decimal strings.
            "rng": {"bit_generator": rng["bit_generator"],
                    "state": str(rng["state"]["state"]), "inc": str(rng["state"]["inc"]),
                    "has_uint32": int(rng["has_uint32"]), "uinteger": int(rng["uinteger"])},
        }

    def load_state_dict(self, d: dict) -> None:
        """Continue from :meth:`state_dict` (call before ``on_start``). Raises
        ``ValueError`` when the capacity or bucket edges differ from this recorder's."""
        if int(d["capacity"]) != self.capacity or not np.array_equal(np.asarray(d["edges"]), self.edges):
            raise ValueError(
                f"impact recorder state has capacity {int(d['capacity'])} and edges "
                f"{np.asarray(d['edges']).tolist()}, this recorder {self.capacity} and {self.edges.tolist()}"
            )
        for k in self._TOTALS:  # each keeps its type (int counts, float sums)
            setattr(self, k, type(getattr(self, k))(d["totals"][k]))
        self.by_kind = {k: int(v) for k, v in d["by_kind"].items()}
        for k in self._BUCKETS:
            setattr(self, k, np.array(d["buckets"][k], getattr(self, k).dtype))
        cols = d["sample"]
        sample = np.zeros(np.shape(cols["seq"])[0], RECORD)
        for f in RECORD.names:
            sample[f] = np.asarray(cols[f])
        if sample.shape[0] != self._kept:
            raise ValueError(f"impact recorder state keeps {self._kept} records but holds {sample.shape[0]}")
        self._sample = sample
        r = d["rng"]
        gen = np.random.Generator(np.random.PCG64())
        gen.bit_generator.state = {
            "bit_generator": r["bit_generator"],
            "state": {"state": int(r["state"]), "inc": int(r["inc"])},
            "has_uint32": int(r["has_uint32"]), "uinteger": int(r["uinteger"]),
        }
        self._rng = gen

    # ------------------------------------------------------------------ accumulation
    def bucket(self, size_over_depth) -> np.ndarray:
        """Size bucket index of each value (``len(edges)`` for >= the last edge, inf)."""
        return np.searchsorted(self.edges, np.asarray(size_over_depth, np.float64), side="right")

    def add(self, rec: np.ndarray) -> None:
        """Fold a batch of :data:`RECORD` rows into the totals and the sample."""
        k = rec.shape[0]
        if k == 0:
            return
        rec = rec.copy()
        rec["seq"] = np.arange(self.n, self.n + k)
        qty, filled = rec["qty"], rec["filled"]
        self.n_full += int(np.count_nonzero(filled == qty))
        self.n_partial += int(np.count_nonzero((filled > 0) & (filled < qty)))
        self.n_unfilled += int(np.count_nonzero(filled == 0))
        for name, code in (("market", _MARKET), ("limit", _LIMIT), ("ioc", _IOC)):
            self.by_kind[name] += int(np.count_nonzero(rec["kind"] == code))
        self.qty += int(qty.sum())
        self.filled += int(filled.sum())

        b = self.bucket(rec["size_over_depth"])
        nb = self.b_orders.shape[0]
        self.b_orders += np.bincount(b, minlength=nb)
        self.b_qty += np.bincount(b, weights=qty, minlength=nb).astype(np.int64)
        self.b_filled += np.bincount(b, weights=filled, minlength=nb).astype(np.int64)

        slip = rec["slippage_bps"]
        ok = np.isfinite(slip)
        y = slip[ok]
        if y.shape[0]:
            self.n_slip += int(y.shape[0])
            self.slip_sum += float(y.sum())
            self.slip_qty_sum += float((y * filled[ok]).sum())
            self.slip_qty += int(filled[ok].sum())
            self.b_n += np.bincount(b[ok], minlength=nb)
            self.b_sum += np.bincount(b[ok], weights=y, minlength=nb)
            self._merge_moments(np.sqrt(rec["size_over_depth"][ok]), y)

        self._reservoir(rec)
        self.n += k

    def _merge_moments(self, x: np.ndarray, y: np.ndarray) -> None:
        """Chan et al.'s pairwise update of the means and co-moments of (x, y)."""
        nb = x.shape[0]
        mx, my = float(x.mean()), float(y.mean())
        dx, dy = x - mx, y - my
        cxx, cxy, cyy = float(dx @ dx), float(dx @ dy), float(dy @ dy)
        na = self._fit_n
        n = na + nb
        ddx, ddy = mx - self._mx, my - self._my
        self._mx += ddx * nb / n
        self._my += ddy * nb / n
        w = na * nb / n
        self._cxx += cxx + ddx * ddx * w
        self._cxy += cxy + ddx * ddy * w
        self._cyy += cyy + ddy * ddy * w
        self._fit_n = n

    def _reservoir(self, rec: np.ndarray) -> None:
        """Algorithm R over the batch: record ``seq`` replaces a random kept one with
        probability ``capacity / (seq + 1)`` once the sample is full."""
        cap = self.capacity
        room = max(0, min(cap - self._kept, rec.shape[0]))
        if room:
            if self._sample.shape[0] < self._kept + room:
                grown = np.zeros(min(cap, max(2 * self._sample.shape[0], self._kept + room)), RECORD)
                grown[: self._kept] = self._sample[: self._kept]
                self._sample = grown
            self._sample[self._kept : self._kept + room] = rec[:room]
            self._kept += room
        rest = rec[room:]
        if rest.shape[0]:
            j = np.floor(self._rng.random(rest.shape[0]) * (rest["seq"] + 1)).astype(np.int64)
            hit = np.flatnonzero(j < cap)
            if hit.shape[0]:
                # A slot drawn twice keeps the later record, as one at a time would.
                slots, first_from_end = np.unique(j[hit][::-1], return_index=True)
                src = hit[::-1][first_from_end]
                self._sample[slots] = rest[src]

    # ------------------------------------------------------------------ results
    def records(self) -> np.ndarray:
        """The kept :data:`RECORD` rows, in run order (all orders when ``n <= capacity``)."""
        s = self._sample[: self._kept]
        return s[np.argsort(s["seq"], kind="stable")]

    def fit(self) -> dict:
        """Least squares ``slippage_bps = intercept + slope * sqrt(size / depth)`` over every
        order with a slippage (exact running moments); NaNs below two distinct x."""
        n = self._fit_n
        if n < 2 or self._cxx <= 0:
            return {"slope": math.nan, "intercept": math.nan, "r2": math.nan, "n": n}
        slope = self._cxy / self._cxx
        r2 = self._cxy**2 / (self._cxx * self._cyy) if self._cyy > 0 else math.nan
        return {"slope": slope, "intercept": self._my - slope * self._mx, "r2": r2, "n": n}

    def summary(self) -> dict:
        """JSON-able summary (for ``summary.json["market_impact"]``); NaN becomes None."""
        rec = self.records()
        slip = rec["slippage_bps"]
        ok = np.isfinite(slip)
        b = self.bucket(rec["size_over_depth"])
        table = []
        for k, label in enumerate(bucket_labels(self.edges)):
            lo = 0.0 if k == 0 else float(self.edges[k - 1])
            hi = float(self.edges[k]) if k < self.edges.shape[0] else math.inf
            kept = slip[ok & (b == k)]
            table.append({
                "size_over_depth": label,
                "lo": lo,
                "hi": None if math.isinf(hi) else hi,
                "orders": int(self.b_orders[k]),
                "fill_ratio": _ratio(self.b_filled[k], self.b_qty[k]),
                "count": int(self.b_n[k]),
                "mean_bps": _ratio(self.b_sum[k], self.b_n[k]),
                "median_bps": _median(kept),
            })
        fit = self.fit()
        return _clean({
            "orders": self.n,
            "by_kind": dict(self.by_kind),
            "fully_filled": self.n_full,
            "partially_filled": self.n_partial,
            "unfilled": self.n_unfilled,
            "shares": self.qty,
            "shares_filled": self.filled,
            "fill_ratio": _ratio(self.filled, self.qty),
            "with_slippage": self.n_slip,
            "mean_slippage_bps": _ratio(self.slip_sum, self.n_slip),
            "median_slippage_bps": _median(slip[ok]),
            "mean_slippage_bps_share_weighted": _ratio(self.slip_qty_sum, self.slip_qty),
            "by_size_over_depth": table,
            "sqrt_fit": {
                "model": "slippage_bps = intercept + slope * sqrt(size / depth)",
                **fit,
            },
            "sample": {"kept": self._kept, "capacity": self.capacity,
                       "medians_exact": self.n <= self.capacity},
        })

    def write_csv(self, path) -> None:
        """Kept records as CSV (:data:`CSV_COLUMNS`; prices in currency; NaN is an empty
        field, a ``size_over_depth`` against an empty side is ``inf``)."""
        rec = self.records()
        names = self.symbols
        with atomic_open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            for r in rec.tolist():
                _, tick, agent, sym, side, kind, qty, filled, avg, mid, slip, sod = r
                w.writerow([
                    tick, agent, names[sym] if 0 <= sym < len(names) else sym,
                    "buy" if side == _BUY else "sell", OrderType(kind).name.lower(),
                    qty, filled, _num(avg / SCALE), _num(mid / SCALE), _num(slip), _num(sod),
                ])

    def plot(self, path) -> None:
        """Slippage against size over depth (log x): up to 5,000 kept orders as dots, the
        bucket means and medians, and the square-root fit; saved to ``path``."""
        from matplotlib.figure import Figure

        rec = self.records()
        ok = np.isfinite(rec["slippage_bps"]) & np.isfinite(rec["size_over_depth"])
        x, y = rec["size_over_depth"][ok], rec["slippage_bps"][ok]
        if x.shape[0] > 5_000:
            pick = np.random.Generator(np.random.PCG64(0)).choice(x.shape[0], 5_000, replace=False)
            x, y = x[pick], y[pick]
        fig = Figure(figsize=(8, 5))
        ax = fig.add_subplot()
        ax.scatter(x, y, s=4, alpha=0.25, color="tab:blue", label=f"orders (sample of {x.shape[0]})")
        s = self.summary()
        bx, bmean, bmed = [], [], []
        for k, row in enumerate(s["by_size_over_depth"]):
            if row["count"] == 0:
                continue
            sel = x[self.bucket(x) == k]
            bx.append(float(np.median(sel)) if sel.shape[0] else (row["lo"] or self.edges[0] / 2))
            bmean.append(row["mean_bps"])
            bmed.append(row["median_bps"] if row["median_bps"] is not None else math.nan)
        ax.plot(bx, bmean, "o-", color="tab:red", label="bucket mean")
        ax.plot(bx, bmed, "s--", color="tab:orange", label="bucket median")
        fit = s["sqrt_fit"]
        if fit["slope"] is not None and x.shape[0]:
            gx = np.geomspace(max(float(x.min()), 1e-4), max(float(x.max()), 1e-3), 100)
            ax.plot(gx, fit["intercept"] + fit["slope"] * np.sqrt(gx), color="black",
                    label=f"{fit['intercept']:.2f} + {fit['slope']:.2f} sqrt(size/depth)")
        for e in self.edges:
            ax.axvline(e, color="grey", lw=0.5, ls=":")
        ax.axhline(0, color="grey", lw=0.5)
        if x.shape[0]:
            ax.set_xscale("log")
        ax.set_xlabel("order size / depth on arrival (opposite side)")
        ax.set_ylabel("slippage vs arrival mid (bp; worse is positive)")
        ax.set_title(f"Market impact: {s['orders']} aggressive orders, "
                     f"mean {_fmt(s['mean_slippage_bps'])} bp")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        save_figure(fig, path, dpi=110)


def _ratio(num, den):
    return float(num) / float(den) if den else math.nan


def _median(a: np.ndarray) -> float:
    return float(np.median(a)) if a.shape[0] else math.nan


def _num(x: float) -> str:
    """A CSV number: empty for NaN, ``inf`` for infinity, else rounded to 6 decimals."""
    if math.isnan(x):
        return ""
    return "inf" if math.isinf(x) else repr(round(x, 6))


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _clean(obj):
    """NaN and inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
