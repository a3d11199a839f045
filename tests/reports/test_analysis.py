"""Stylized facts and event response (qtg/reports/analysis.py) against slow references and
processes with known answers, on synthetic run directories written in the exact
prices.csv / events.csv formats a run produces."""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from qtg.reports import analysis

PRICES_HEADER = ["tick", "symbol", "sector", "last", "bid", "ask", "mid", "fair", "volume"]
EVENTS_HEADER = ["tick", "kind", "target", "size", "symbols", "fair_before", "fair_after"]


def write_run(run_dir: Path, price, symbols=None, sectors=None, fair=None, events=(), ticks=None,
              spread: float = 0.02, one_sided=None) -> Path:
    """Write ``run_dir/prices.csv`` (and ``events.csv`` when events are given) in the run
    format: one row per (tick, symbol), currency floats, 0 for an empty side.
    ``price`` f64[T, S] is the mid (and the last trade); ``one_sided`` bool[T, S] empties
    the bid on those rows (mid written 0, as a run does)."""
    price = np.asarray(price, np.float64)
    if price.ndim == 1:
        price = price[:, None]
    n_t, n_s = price.shape
    symbols = symbols or [f"S{j}" for j in range(n_s)]
    sectors = sectors or ["market"] * n_s
    fair = np.zeros_like(price) if fair is None else np.broadcast_to(np.asarray(fair, np.float64), price.shape)
    ticks = np.arange(n_t) if ticks is None else ticks
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "prices.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(PRICES_HEADER)
        for t in range(n_t):
            for j in range(n_s):
                p = price[t, j]
                p = float(p)
                bid, ask, mid = p - spread / 2, p + spread / 2, p
                if one_sided is not None and one_sided[t, j]:
                    bid, mid = 0.0, 0.0
                w.writerow([int(ticks[t]), symbols[j], sectors[j], repr(float(p)), repr(bid), repr(ask),
                            repr(mid), repr(float(fair[t, j])), 10])
    if events:
        with (run_dir / "events.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(EVENTS_HEADER)
            for e in events:
                w.writerow([e["tick"], e["kind"], e["target"], e["size"], ";".join(e["symbols"]),
                            e.get("fair_before", ""), e.get("fair_after", "")])
    return run_dir


def prices_from_returns(r: np.ndarray, start: float = 100.0) -> np.ndarray:
    """Price path [T+1, S] whose log returns are ``r`` [T, S]."""
    r = np.asarray(r, np.float64)
    if r.ndim == 1:
        r = r[:, None]
    return start * np.exp(np.vstack([np.zeros((1, r.shape[1])), np.cumsum(r, axis=0)]))


def facts_of(tmp_path, price, **kw) -> dict[str, dict]:
    prices = analysis.load_prices(write_run(tmp_path / "run", price, **kw))
    return {f["name"]: f for f in analysis.stylized_facts(prices)}


def garch(rng, n, omega=0.05, alpha=0.1, beta=0.85) -> np.ndarray:
    r, s2 = np.empty(n), omega / (1 - alpha - beta)
    z = rng.standard_normal(n)
    for t in range(n):
        r[t] = math.sqrt(s2) * z[t]
        s2 = omega + alpha * r[t] ** 2 + beta * s2
    return r


def ar1(rng, n, b, x0=0.0, sigma=1.0) -> np.ndarray:
    x, e = np.empty(n), rng.standard_normal(n) * sigma
    prev = x0
    for t in range(n):
        prev = b * prev + e[t]
        x[t] = prev
    return x


# ------------------------------------------------------------------ slow references


def slow_kurtosis(x) -> float:
    n = len(x)
    m = sum(x) / n
    m2 = sum((v - m) ** 2 for v in x) / n
    m4 = sum((v - m) ** 4 for v in x) / n
    return m4 / m2**2 - 3.0


def slow_acf(x, lags) -> list[float]:
    n = len(x)
    m = sum(x) / n
    den = sum((v - m) ** 2 for v in x)
    return [sum((x[t] - m) * (x[t + k] - m) for t in range(n - k)) / den for k in range(1, lags + 1)]


def test_kurtosis_matches_slow_reference_and_known_values():
    rng = np.random.default_rng(1)
    x = rng.standard_t(5, size=400)
    assert analysis.excess_kurtosis(x) == pytest.approx(slow_kurtosis(list(x)), rel=1e-10)
    # Two-point +-1 sample: m4 / m2^2 = 1, excess -2; the grid 0..99: -6(n^2+1)/(5(n^2-1)).
    assert analysis.excess_kurtosis(np.tile([-1.0, 1.0], 20)) == pytest.approx(-2.0, abs=1e-12)
    n = 100
    exact = -6 * (n * n + 1) / (5 * (n * n - 1))  # discrete uniform on n points
    assert analysis.excess_kurtosis(np.arange(n, dtype=float)) == pytest.approx(exact, rel=1e-12)
    # Non-overlapping aggregation: block sums, remainder dropped.
    r = np.arange(23, dtype=float)
    assert analysis.aggregate(r, 5).tolist() == [sum(range(i, i + 5)) for i in range(0, 20, 5)]
    assert analysis.excess_kurtosis(np.ones(100)) is None
    assert analysis.excess_kurtosis(x[:10]) is None


def test_acf_and_ar1_fit_match_slow_references():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(300)
    assert np.allclose(analysis.acf(x, 12), slow_acf(list(x), 12), rtol=0, atol=1e-12)
    y = ar1(rng, 500, 0.7)
    fit = analysis.ar1_fit(y)
    b_ref, a_ref = np.polyfit(y[:-1], y[1:], 1)
    assert fit["b"] == pytest.approx(b_ref, rel=1e-10) and fit["a"] == pytest.approx(a_ref, abs=1e-10)
    resid = y[1:] - a_ref - b_ref * y[:-1]
    se_ref = math.sqrt((resid @ resid) / (len(resid) - 2) / ((y[:-1] - y[:-1].mean()) ** 2).sum())
    assert fit["df_stat"] == pytest.approx((b_ref - 1) / se_ref, rel=1e-8)
    assert fit["half_life"] == pytest.approx(-math.log(2) / math.log(b_ref), rel=1e-10)


# ------------------------------------------------------------------ facts on known processes


def test_heavy_tails_student_t_passes_normal_fails(tmp_path):
    rng = np.random.default_rng(3)
    t_returns = 0.001 * rng.standard_t(4, size=(5000, 3))
    f = facts_of(tmp_path / "t", prices_from_returns(t_returns))["heavy tails"]
    assert f["passed"] is True and f["value"] > 2
    assert set(f["statistics"]) == {"kurtosis_h1", "kurtosis_h5", "kurtosis_h20"}
    assert f["per_symbol"]["S0"]["kurtosis_h1"] > analysis.KURTOSIS_MIN
    n_returns = 0.001 * rng.standard_normal((5000, 3))
    f = facts_of(tmp_path / "n", prices_from_returns(n_returns))["heavy tails"]
    assert f["passed"] is False and abs(f["value"]) < 0.3


def test_volatility_clustering_garch_passes_iid_fails(tmp_path):
    rng = np.random.default_rng(4)
    g = 0.001 * np.stack([garch(rng, 5000) for _ in range(3)], axis=1)
    f = facts_of(tmp_path / "g", prices_from_returns(g))["volatility clustering"]
    assert f["passed"] is True, f
    assert f["value"] > analysis.VOL_CLUSTER_MIN and len(f["statistics"]["acf"]) == analysis.ACF_LAGS
    iid = 0.001 * rng.standard_normal((5000, 3))
    f = facts_of(tmp_path / "i", prices_from_returns(iid))["volatility clustering"]
    assert f["passed"] is False and abs(f["value"]) < 0.02


def test_no_autocorrelation_ar1_fails_iid_passes(tmp_path):
    rng = np.random.default_rng(5)
    r = 0.001 * np.stack([ar1(rng, 5000, 0.3) for _ in range(3)], axis=1)
    f = facts_of(tmp_path / "a", prices_from_returns(r))["no autocorrelation"]
    assert f["passed"] is False and f["statistics"]["acf_1"] == pytest.approx(0.3, abs=0.05)
    assert "lag 1" in f["note"]
    iid = 0.001 * rng.standard_normal((5000, 3))
    f = facts_of(tmp_path / "i", prices_from_returns(iid))["no autocorrelation"]
    assert f["passed"] is True and abs(f["statistics"]["acf_1"]) < 0.05


def test_mean_reversion_ou_half_life(tmp_path):
    rng = np.random.default_rng(6)
    b = 0.95
    x = np.stack([ar1(rng, 20000, b, sigma=0.002) for _ in range(3)], axis=1)
    fair = 50.0 + np.zeros_like(x)
    fair[10000:] = 60.0  # fair value jumps; price follows it a tick later: x is unaffected
    seen = np.vstack([fair[:1], fair[:-1]])  # the fair value the prices of a tick are set on
    f = facts_of(tmp_path, seen * np.exp(x), fair=fair)["mean reversion"]
    expected = -math.log(2) / math.log(b)  # 13.51 ticks
    assert f["passed"] is True
    assert f["statistics"]["half_life"] == pytest.approx(expected, rel=0.15)
    for s in ("S0", "S1", "S2"):
        assert f["per_symbol"][s]["half_life"] == pytest.approx(expected, rel=0.2)


def test_mean_reversion_random_walk_fails(tmp_path):
    rng = np.random.default_rng(7)
    walks = np.cumsum(0.002 * rng.standard_normal((2000, 10)), axis=0)
    f = facts_of(tmp_path, 100.0 * np.exp(walks), fair=100.0)["mean reversion"]
    assert f["passed"] is False
    # A unit root is rejected at 5% about 5% of the time: at most 2 of 10 walks pass.
    assert sum(v["passed"] for v in f["per_symbol"].values()) <= 2
    assert f["statistics"]["df_stat"] > analysis.DF_CRITICAL


def test_mean_reversion_na_without_fair(tmp_path):
    rng = np.random.default_rng(8)
    f = facts_of(tmp_path, prices_from_returns(0.001 * rng.standard_normal(500)))["mean reversion"]
    assert f["passed"] is None and f["note"] == "no fair value recorded"


def test_short_and_constant_series_are_na_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        short = facts_of(tmp_path / "short", 100 + np.arange(10.0), fair=100.0)
        flat = facts_of(tmp_path / "flat", np.full((300, 2), 100.0), fair=100.0)
    for facts in (short, flat):
        assert [f["passed"] for f in facts.values()] == [None] * 4
        assert all(f["note"] for f in facts.values())


def test_price_series_uses_last_where_a_side_is_empty(tmp_path):
    price = np.array([[100.0], [101.0], [102.0], [103.0]])
    one_sided = np.array([[False], [True], [False], [False]])
    prices = analysis.load_prices(write_run(tmp_path, price, one_sided=one_sided, spread=0.5))
    assert prices["mid"][1, 0] == 0.0 and prices["bid"][1, 0] == 0.0
    assert analysis.price_series(prices)[:, 0].tolist() == [100.0, 101.0, 102.0, 103.0]
    # A tick with no price at all carries the previous price forward.
    prices["last"][2, 0] = prices["mid"][2, 0] = prices["bid"][2, 0] = 0.0
    assert analysis.price_series(prices)[:, 0].tolist() == [100.0, 101.0, 101.0, 103.0]


def test_load_prices_shapes_and_errors(tmp_path):
    price = np.array([[100.0, 50.0], [101.0, 51.0], [102.0, 52.0]])
    prices = analysis.load_prices(write_run(tmp_path / "ok", price, symbols=["ACME", "BOLT"],
                                            sectors=["tech", "energy"], fair=[99.0, 49.0], ticks=[5, 6, 8]))
    assert prices["ticks"].tolist() == [5, 6, 8]
    assert prices["symbols"] == ["ACME", "BOLT"] and prices["sectors"] == ["tech", "energy"]
    assert prices["mid"].shape == (3, 2) and prices["mid"][2, 1] == 52.0 and prices["fair"][0, 0] == 99.0
    assert prices["volume"][0, 0] == 10.0
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "prices.csv").write_text("tick,symbol,last\n0,ACME,100\n1,ACME,abc\n")
    with pytest.raises(ValueError, match="line 3"):
        analysis.load_prices(bad)
    (bad / "prices.csv").write_text("when,what\n0,1\n")
    with pytest.raises(ValueError, match="tick"):
        analysis.load_prices(bad)
    (bad / "prices.csv").write_text("tick,symbol,last\n0,ACME,100\n0,ACME,101\n")
    with pytest.raises(ValueError, match="same"):
        analysis.load_prices(bad)
    assert analysis.load_events(bad) == []


# ------------------------------------------------------------------ event response


def shock_run(tmp_path) -> Path:
    """Four symbols in two sectors, 600 ticks, prices 100. Sector ``energy`` (BOLT, CRUX)
    drops to 90 at tick 100 and recovers as 100 - 10 exp(-(t - 100) / 20); its fair value
    goes 100 -> 95 at tick 100. ACME jumps to 106 at tick 400 and decays as
    100 + 6 exp(-(t - 400) / 10)."""
    t = np.arange(600.0)
    price = np.full((600, 4), 100.0)
    energy = np.where(t >= 100, 100 - 10 * np.exp(-(t - 100) / 20), 100.0)
    price[:, 1] = price[:, 2] = energy
    price[:, 0] = np.where(t >= 400, 100 + 6 * np.exp(-(t - 400) / 10), 100.0)
    fair = np.full((600, 4), 100.0)
    fair[100:, 1:3] = 95.0
    events = [
        {"tick": 100, "kind": "sector", "target": "energy", "size": -0.1, "symbols": ["BOLT", "CRUX"],
         "fair_before": 100.0, "fair_after": 95.0},
        {"tick": 400, "kind": "earnings", "target": "ACME", "size": 0.06, "symbols": ["ACME"],
         "fair_before": 100.0, "fair_after": 100.0},
        {"tick": 500, "kind": "rate", "target": "all", "size": 0.0, "symbols": ["ACME", "BOLT", "CRUX", "DUNE"]},
    ]
    return write_run(tmp_path, price, symbols=["ACME", "BOLT", "CRUX", "DUNE"],
                     sectors=["tech", "energy", "energy", "tech"], fair=fair, events=events)


def test_event_response_step_drop_and_exponential_recovery(tmp_path):
    run = shock_run(tmp_path)
    prices, events = analysis.load_prices(run), analysis.load_events(run)
    assert [e["symbols"] for e in events][0] == ["BOLT", "CRUX"] and events[2]["fair_before"] is None
    drop, jump, rate = analysis.event_response(prices, events, window=200, baseline=20)
    # Pre-event level 100 (ticks 80-99); extreme 90 at tick 100: -10%. Others flat at 100.
    assert drop["pre_price"] == 100.0 and drop["extreme_price"] == 90.0 and drop["extreme_tick"] == 100
    assert drop["move_pct"] == pytest.approx(-10.0) and drop["others_move_pct"] == pytest.approx(0.0)
    assert drop["relative_move_pct"] == pytest.approx(-10.0)
    # Half way back is 95: 10 exp(-k / 20) <= 5 <=> k >= 20 ln 2 = 13.86 -> 14 ticks.
    assert drop["half_recovery_ticks"] == 14
    assert drop["fair_move_pct"] == pytest.approx(-5.0)
    assert drop["symbols"] == ["BOLT", "CRUX"]
    # +6% jump; half way back is 103: 6 exp(-k / 10) <= 3 <=> k >= 6.93 -> 7 ticks.
    assert jump["move_pct"] == pytest.approx(6.0) and jump["half_recovery_ticks"] == 7
    assert jump["others_move_pct"] == pytest.approx(0.0, abs=1e-4) and jump["fair_move_pct"] == pytest.approx(0.0)
    # An event on every symbol has no others.
    assert rate["others_move_pct"] is None and rate["relative_move_pct"] is None
    # A window that ends before the half recovery: None.
    short = analysis.event_response(prices, events[:1], window=10)[0]
    assert short["move_pct"] == pytest.approx(-10.0) and short["half_recovery_ticks"] is None
    table = analysis.format_event_table([drop, jump, rate])
    lines = table.splitlines()
    assert len(lines) == 5 and "half rec." in lines[0] and "-10.00" in lines[2] and "14" in lines[2]
    assert len({len(line) for line in lines[:2]}) == 1


def test_event_response_reference_loop(tmp_path):
    """The vectorised response against a direct loop on a noisy path."""
    rng = np.random.default_rng(9)
    price = 100 * np.exp(np.cumsum(0.002 * rng.standard_normal((400, 3)), axis=0))
    ev = [{"tick": 150, "kind": "earnings", "target": "S1", "size": -0.05, "symbols": ["S1"]}]
    prices = analysis.load_prices(write_run(tmp_path, price))
    row = analysis.event_response(prices, ev, window=100, baseline=20)[0]
    p = price[:, 1]
    pre = sum(p[130:150]) / 20
    seg = list(p[150:250])
    k = min(range(len(seg)), key=lambda i: seg[i])
    assert row["move_pct"] == pytest.approx((seg[k] / pre - 1) * 100, abs=1e-5)
    half = pre + (seg[k] - pre) / 2
    later = [i for i in range(k + 1, len(seg)) if seg[i] >= half]
    assert row["half_recovery_ticks"] == (later[0] - k if later else None)
    others = (price[:, 0] + price[:, 2]) / 2
    assert row["others_move_pct"] == pytest.approx((others[150:250].min() / others[130:150].mean() - 1) * 100, abs=1e-5)


# ------------------------------------------------------------------ charts


def test_charts_write_pngs(tmp_path):
    run = shock_run(tmp_path)
    prices, events = analysis.load_prices(run), analysis.load_events(run)
    analysis.plot_event_study(prices, events, tmp_path / "events.png", title="shock")
    facts = analysis.stylized_facts(prices)
    analysis.plot_stylized_facts(facts, analysis.log_returns(prices), tmp_path / "facts.png",
                                 mispricing=analysis.log_mispricing(prices))
    for name in ("events.png", "facts.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_charts_by_sector_and_on_flat_prices_without_warnings(tmp_path):
    rng = np.random.default_rng(10)
    symbols = [f"S{j}" for j in range(10)]
    sectors = [s for s in ("tech", "energy", "health", "finance", "consumer") for _ in range(2)]
    price = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal((300, 10)), axis=0))
    ev = [{"tick": 150, "kind": "sector", "target": "tech", "size": -0.2, "symbols": ["S0", "S1"]}]
    prices = analysis.load_prices(write_run(tmp_path / "ten", price, symbols=symbols, sectors=sectors, fair=100.0))
    analysis.plot_event_study(prices, ev, tmp_path / "sectors.png")
    assert (tmp_path / "sectors.png").stat().st_size > 10_000
    flat = analysis.load_prices(write_run(tmp_path / "flat", np.full((20, 2), 100.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        facts = analysis.stylized_facts(flat)
        analysis.plot_stylized_facts(facts, analysis.log_returns(flat), tmp_path / "flat.png",
                                     mispricing=analysis.log_mispricing(flat))
        analysis.plot_event_study(flat, [], tmp_path / "flat_events.png")
        assert analysis.event_response(flat, [{"tick": 0, "kind": "rate", "target": "all", "size": 0.01,
                                               "symbols": []}])[0]["move_pct"] is None
    assert (tmp_path / "flat.png").exists() and (tmp_path / "flat_events.png").exists()


def test_event_study_draws_every_symbol(tmp_path):
    rng = np.random.default_rng(14)
    symbols = [f"S{j:02d}" for j in range(12)]
    sectors = [s for s in ("tech", "energy", "health") for _ in range(4)]
    price = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal((200, 12)), axis=0))
    ev = [{"tick": 100, "kind": "sector", "target": "energy", "size": -0.2, "symbols": symbols[4:8]}]
    prices = analysis.load_prices(write_run(tmp_path / "twelve", price, symbols=symbols, sectors=sectors, fair=100.0))
    fig = analysis.event_study_figure(prices, ev)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left").split(":")[0] for ax in panels] == ["tech", "energy", "health"]
    drawn = [[ln.get_label() for ln in ax.lines if not ln.get_label().startswith("_")] for ax in panels]
    assert drawn == [symbols[0:4], symbols[4:8], symbols[8:12]]
    assert all(ax.get_legend() is None for ax in panels)
    # each line named at its end (four a panel), the event labelled where it hits
    assert [[t.get_text() for t in ax.texts] for ax in panels] == [
        symbols[0:4], [*symbols[4:8], " sector energy"], symbols[8:12]]
    few = analysis.load_prices(write_run(tmp_path / "three", price[:, :3], fair=100.0))
    fig = analysis.event_study_figure(few, [])
    (ax,) = fig.axes
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["S0", "S1", "S2", "fair value"]
    fig.canvas.draw()
    assert legend.get_window_extent().x0 >= ax.get_window_extent().x1  # outside the data
    import matplotlib.pyplot as plt

    plt.close("all")


def test_event_response_follows_the_fair_value_not_the_size_sign(tmp_path):
    """A rate hike has a positive size and lowers fair values: its move is the drop."""
    price = np.full((300, 2), 100.0)
    price[100:] = 83.0
    ev = [{"tick": 100, "kind": "rate", "target": "all", "size": 0.01, "symbols": ["S0", "S1"],
           "fair_before": 100.0, "fair_after": 83.3}]
    prices = analysis.load_prices(write_run(tmp_path, price))
    row = analysis.event_response(prices, ev, window=100, baseline=20)[0]
    assert row["move_pct"] == pytest.approx(-17.0)
