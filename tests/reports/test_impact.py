"""ImpactRecorder: which orders it measures, their slippage, the size buckets, the
square-root fit, bounded memory, the CSV and plot, and one small simulated run."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from components.orders import OrderBatch, OrderType, Outcomes, Side, Status
from qtg.reports.impact import RECORD, ImpactRecorder, bucket_labels, measure

BUY, SELL = int(Side.BUY), int(Side.SELL)
LIMIT, MARKET, IOC, POST_ONLY, CANCEL, MODIFY = (int(k) for k in OrderType)
OK_STATUS = int(Status.FILLED)


def P(currency: float) -> int:
    return round(currency * 10_000)


def order(kind, side, qty, price=0, *, status=OK_STATUS, filled=0, value=0,
          bid=P(99.99), ask=P(100.01), depth=100, agent=0, symbol=0) -> dict:
    return dict(kind=kind, side=side, qty=qty, price=price, status=status, filled=filled,
                value=value, bid=bid, ask=ask, depth=depth, agent=agent, symbol=symbol)


def fake_tick(*rows: dict, tick: int = 7, symbols=("ACME", "BOLT")):
    """(sim, result) as the hook sees them: host.last_orders / last_match.outcomes."""
    col = lambda k: [r[k] for r in rows]  # noqa: E731
    orders = OrderBatch.from_numpy(
        id=list(range(len(rows))), agent=col("agent"), symbol=col("symbol"), side=col("side"),
        kind=col("kind"), price=col("price"), qty=col("qty"),
    )
    i64 = lambda k: np.array(col(k), np.int64)  # noqa: E731
    outcomes = Outcomes(
        status=np.array(col("status"), np.int8), reason=np.zeros(len(rows), np.int8),
        filled=i64("filled"), resting=np.zeros(len(rows), np.int64), filled_value=i64("value"),
        arrival_bid=i64("bid"), arrival_ask=i64("ask"), arrival_depth=i64("depth"),
    )
    sim = SimpleNamespace(
        static=SimpleNamespace(symbols=symbols),
        host=SimpleNamespace(last_orders=orders, last_match=SimpleNamespace(outcomes=outcomes)),
    )
    return sim, SimpleNamespace(tick=tick)


def run_ticks(rec: ImpactRecorder, *ticks) -> ImpactRecorder:
    sim, _ = ticks[0]
    rec.on_start(sim)
    for sim, result in ticks:
        rec.on_tick(sim, result)
    rec.on_end(sim)
    return rec


WALK_BUY = order(MARKET, BUY, 25, filled=25, value=10 * P(100.01) + 15 * P(100.02), depth=35, agent=3)
SELL_ONE = order(MARKET, SELL, 3, filled=3, value=3 * P(99.99), depth=7, agent=4, symbol=1)


def test_buy_walking_two_levels_and_a_sell():
    rec = run_ticks(ImpactRecorder(), fake_tick(WALK_BUY, SELL_ONE))
    r = rec.records()
    assert r["tick"].tolist() == [7, 7] and r["agent"].tolist() == [3, 4]
    assert r["avg_price"].tolist() == [P(100.016), P(99.99)]
    assert r["mid"].tolist() == [P(100.00), P(100.00)]
    # buy: (100.016 - 100) / 100 * 1e4 = 1.6 bp; sell: (100 - 99.99) / 100 * 1e4 = 1 bp
    assert r["slippage_bps"] == pytest.approx([1.6, 1.0], abs=1e-9)
    assert r["size_over_depth"].tolist() == [25 / 35, 3 / 7]
    s = rec.summary()
    assert (s["orders"], s["fully_filled"], s["partially_filled"], s["unfilled"]) == (2, 2, 0, 0)
    assert s["mean_slippage_bps"] == pytest.approx(1.3) and s["median_slippage_bps"] == pytest.approx(1.3)
    assert s["mean_slippage_bps_share_weighted"] == pytest.approx((1.6 * 25 + 1.0 * 3) / 28)
    assert s["fill_ratio"] == 1.0 and s["by_kind"] == {"market": 2, "limit": 0, "ioc": 0}


def test_partial_fill_counts_and_a_better_than_mid_price_is_negative():
    # Made-up numbers: a sell that averaged 100.02 against a mid of 100.00 gained 2 bp.
    lucky = order(MARKET, SELL, 10, status=int(Status.PARTIAL), filled=4, value=4 * P(100.02), depth=4)
    rec = run_ticks(ImpactRecorder(), fake_tick(lucky))
    assert rec.records()["slippage_bps"][0] == pytest.approx(-2.0)
    s = rec.summary()
    assert (s["fully_filled"], s["partially_filled"], s["unfilled"]) == (0, 1, 0)
    assert s["fill_ratio"] == 0.4 and s["by_size_over_depth"][5]["fill_ratio"] == 0.4  # 10 / 4 >= 1


def test_slippage_is_skipped_when_a_side_was_empty_or_nothing_filled():
    no_ask = order(MARKET, SELL, 5, filled=5, value=5 * P(99.99), ask=0, depth=5)
    no_fill = order(MARKET, BUY, 5, status=int(Status.CANCELLED), bid=P(99.99), ask=0, depth=0)
    rec = run_ticks(ImpactRecorder(), fake_tick(no_ask, no_fill, WALK_BUY))
    r = rec.records()
    assert np.isnan(r["mid"][0]) and np.isnan(r["slippage_bps"][0]) and r["avg_price"][0] == P(99.99)
    assert np.isnan(r["avg_price"][1]) and np.isinf(r["size_over_depth"][1])
    s = rec.summary()
    assert s["orders"] == 3 and s["with_slippage"] == 1 and s["unfilled"] == 1
    assert s["mean_slippage_bps"] == pytest.approx(1.6)
    json.dumps(s, allow_nan=False)  # NaN and inf come out as null


def test_only_accepted_market_and_marketable_orders_are_measured():
    ask, bid = P(100.01), P(99.99)
    rows = [
        order(LIMIT, BUY, 1, ask, filled=1, value=ask),  # at the ask: marketable
        order(LIMIT, BUY, 1, ask - 100, status=int(Status.ACCEPTED)),  # below it: passive
        order(IOC, SELL, 1, bid, filled=1, value=bid),  # at the bid: marketable
        order(IOC, SELL, 1, bid + 100, status=int(Status.CANCELLED)),  # above it: not
        order(LIMIT, BUY, 1, ask, status=int(Status.ACCEPTED), ask=0),  # nothing to cross
        order(POST_ONLY, BUY, 1, bid, status=int(Status.ACCEPTED)),
        order(MARKET, BUY, 1, status=int(Status.REJECTED)),
        order(CANCEL, BUY, 0, status=int(Status.ACCEPTED)),
        order(MODIFY, BUY, 1, ask, status=int(Status.ACCEPTED)),
        order(MARKET, SELL, 2, filled=2, value=2 * bid),
    ]
    sim, _ = fake_tick(*rows)
    r = measure(sim.host.last_orders, sim.host.last_match.outcomes, tick=3)
    assert r["kind"].tolist() == [LIMIT, IOC, MARKET]
    assert r["side"].tolist() == [BUY, SELL, SELL] and r["tick"].tolist() == [3, 3, 3]
    rec = run_ticks(ImpactRecorder(), (sim, SimpleNamespace(tick=3)))
    assert rec.summary()["by_kind"] == {"market": 1, "limit": 1, "ioc": 1}


def test_size_over_depth_buckets():
    rec = ImpactRecorder()
    assert bucket_labels() == ["<0.01", "0.01-0.03", "0.03-0.1", "0.1-0.3", "0.3-1", ">=1"]
    x = [0.0, 0.005, 0.01, 0.0299, 0.03, 0.05, 0.2, 0.5, 0.99, 1.0, 3.0, math.inf]
    assert rec.bucket(x).tolist() == [0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 5, 5]
    # Through the hook: qty / depth picks the bucket; slippage 1.6 and 1.0 land apart.
    big = dict(WALK_BUY)  # 25 / 35 = 0.71
    small = dict(SELL_ONE, qty=3, depth=1000)  # 0.003
    s = run_ticks(rec, fake_tick(big, small)).summary()
    table = {row["size_over_depth"]: row for row in s["by_size_over_depth"]}
    assert (table["0.3-1"]["count"], table["0.3-1"]["mean_bps"]) == (1, pytest.approx(1.6))
    assert (table["<0.01"]["count"], table["<0.01"]["median_bps"]) == (1, pytest.approx(1.0))
    assert table[">=1"]["orders"] == 0 and table[">=1"]["mean_bps"] is None
    assert table["0.3-1"]["lo"] == 0.3 and table["0.3-1"]["hi"] == 1.0 and table[">=1"]["hi"] is None


def _synthetic(n: int, slope: float, intercept: float, noise: float, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    rec = np.zeros(n, RECORD)
    rec["qty"] = rec["filled"] = 10
    rec["kind"] = MARKET
    rec["size_over_depth"] = g.uniform(0.001, 2.0, n)
    rec["slippage_bps"] = intercept + slope * np.sqrt(rec["size_over_depth"]) + noise * g.standard_normal(n)
    return rec


def test_square_root_fit_recovers_a_known_law_across_batches():
    data = _synthetic(1000, slope=30.0, intercept=2.0, noise=0.0)
    rec = ImpactRecorder()
    for part in np.array_split(data, 7):
        rec.add(part)
    fit = rec.summary()["sqrt_fit"]
    assert fit["slope"] == pytest.approx(30.0, rel=1e-9)
    assert fit["intercept"] == pytest.approx(2.0, abs=1e-9)
    assert fit["r2"] == pytest.approx(1.0) and fit["n"] == 1000

    noisy = _synthetic(5000, slope=12.0, intercept=-1.0, noise=3.0, seed=1)
    rec = ImpactRecorder(capacity=100)  # the fit uses running moments, not the sample
    for part in np.array_split(noisy, 13):
        rec.add(part)
    want_slope, want_icpt = np.polyfit(np.sqrt(noisy["size_over_depth"]), noisy["slippage_bps"], 1)
    fit = rec.fit()
    assert fit["slope"] == pytest.approx(want_slope, rel=1e-9)
    assert fit["intercept"] == pytest.approx(want_icpt, rel=1e-9)


def test_memory_is_bounded_and_totals_stay_exact():
    data = _synthetic(10_000, slope=5.0, intercept=1.0, noise=2.0, seed=2)
    rec = ImpactRecorder(capacity=500, seed=3)
    for part in np.array_split(data, 40):
        rec.add(part)
    kept = rec.records()
    assert kept.shape[0] == 500 and rec._sample.shape[0] <= 500
    assert np.all(np.diff(kept["seq"]) > 0)  # distinct, in run order
    assert kept["seq"].max() > 5_000  # a sample of the whole run, not only its start
    s = rec.summary()
    assert s["orders"] == 10_000 and s["with_slippage"] == 10_000
    assert s["mean_slippage_bps"] == pytest.approx(data["slippage_bps"].mean(), rel=1e-12)
    counts = np.bincount(rec.bucket(data["size_over_depth"]), minlength=6)
    assert [row["count"] for row in s["by_size_over_depth"]] == counts.tolist()
    assert s["sample"] == {"kept": 500, "capacity": 500, "medians_exact": False}
    assert s["median_slippage_bps"] == pytest.approx(np.median(data["slippage_bps"]), abs=0.5)
    # The same seed keeps the same sample.
    again = ImpactRecorder(capacity=500, seed=3)
    for part in np.array_split(data, 40):
        again.add(part)
    assert np.array_equal(again.records()["seq"], kept["seq"])


def test_csv_and_plot(tmp_path):
    no_ask = order(MARKET, SELL, 5, filled=5, value=5 * P(99.99), ask=0, depth=5)
    rec = run_ticks(ImpactRecorder(), fake_tick(WALK_BUY, SELL_ONE, no_ask))
    rec.write_csv(tmp_path / "impact.csv")
    with (tmp_path / "impact.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["tick", "agent", "symbol", "side", "kind", "qty", "filled",
                             "avg_price", "mid", "slippage_bps", "size_over_depth"]
    first = rows[0]
    assert (first["tick"], first["agent"], first["symbol"], first["side"], first["kind"]) == (
        "7", "3", "ACME", "buy", "market")
    assert (first["qty"], first["filled"]) == ("25", "25")
    assert float(first["avg_price"]) == 100.016 and float(first["mid"]) == 100.0
    assert float(first["slippage_bps"]) == pytest.approx(1.6)
    assert float(first["size_over_depth"]) == pytest.approx(25 / 35, abs=1e-6)
    assert rows[1]["symbol"] == "BOLT" and rows[1]["side"] == "sell"
    assert rows[2]["mid"] == "" and rows[2]["slippage_bps"] == ""
    rec.plot(tmp_path / "impact.png")
    assert (tmp_path / "impact.png").read_bytes()[:4] == b"\x89PNG"
    ImpactRecorder().plot(tmp_path / "empty.png")  # no orders: still a figure


class _Bars:
    """Keeps each tick's low/high per symbol by tick number."""

    def __init__(self):
        self.low, self.high, self.fills = {}, {}, {}

    def on_start(self, sim):
        pass

    def on_tick(self, sim, r):
        self.low[r.tick], self.high[r.tick] = r.low.copy(), r.high.copy()
        self.fills[r.tick] = int(r.fills.qty.sum())

    def on_end(self, sim):
        pass


def test_recorder_in_a_small_simulation(tmp_path):
    from qtg.core.sim import Simulation
    from qtg.core.world import build_world, make_engine_for
    from tests.support import make_config

    cfg = make_config(**{"market.symbols": ["ACME"], "market.sectors": ["tech"], "run.ticks": 50})
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    impact, bars = ImpactRecorder(), _Bars()
    sim.run(50, hooks=[bars, impact])

    r = impact.records()
    s = impact.summary()
    json.dumps(s, allow_nan=False)
    assert s["orders"] == r.shape[0] > 0 and s["sample"]["medians_exact"]
    assert s["fully_filled"] + s["partially_filled"] + s["unfilled"] == s["orders"]
    assert sum(row["orders"] for row in s["by_size_over_depth"]) == s["orders"]
    assert np.all((r["filled"] >= 0) & (r["filled"] <= r["qty"]))
    done = r["filled"] > 0
    lo = np.array([bars.low[t][sym] for t, sym in zip(r["tick"], r["symbol"])])
    hi = np.array([bars.high[t][sym] for t, sym in zip(r["tick"], r["symbol"])])
    assert np.all((lo[done] <= r["avg_price"][done]) & (r["avg_price"][done] <= hi[done]))
    assert np.all(r["size_over_depth"][done] > 0) and np.all(np.isfinite(r["size_over_depth"][done]))
    # Measured orders are takers: their fills are part of (at most) each tick's volume.
    for t in np.unique(r["tick"]):
        assert r["filled"][r["tick"] == t].sum() <= bars.fills[t]
    # Against the arrival mid a taker pays at least the half spread (the touch is never
    # better than the mid for it), so slippage is never negative in a real book.
    slip = r["slippage_bps"][np.isfinite(r["slippage_bps"])]
    assert slip.shape[0] > 0 and np.all(slip >= 0)
    impact.write_csv(tmp_path / "impact.csv")
    impact.plot(tmp_path / "impact.png")
    assert (tmp_path / "impact.png").stat().st_size > 0
