"""The facts at 1, 10 and 100 ticks (qtg/reports/analysis.py): each statistic against a
hand-computed value, a slow reference or a distribution with a known answer."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from qtg.reports import analysis
from tests.reports.test_analysis import write_run


def hill_reference(x, tail=0.05):
    """Hill (1975) written out: the k largest |x| over the (k+1)-th, in a Python loop."""
    a = sorted((abs(float(v)) for v in x), reverse=True)
    k = math.floor(tail * len(a))
    return 1.0 / (sum(math.log(a[i]) for i in range(k)) / k - math.log(a[k]))


def test_hill_alpha_matches_the_reference_and_recovers_a_pareto_index():
    rng = np.random.default_rng(3)
    x = rng.standard_t(4, 2000)
    assert analysis.hill_alpha(x) == pytest.approx(hill_reference(x), rel=1e-12)
    for alpha in (2.0, 3.0, 4.5):
        pareto = (rng.pareto(alpha, 40_000) + 1.0) * rng.choice([-1.0, 1.0], 40_000)  # P(|X| > u) = u^-alpha
        # k = 2000 tail values: the estimate's relative error is about 1/sqrt(k) = 2.2%
        assert analysis.hill_alpha(pareto) == pytest.approx(alpha, rel=0.08)


def test_hill_alpha_of_an_exact_power_law_grid():
    # |x| = u^(-1/alpha) at the quantiles u = i/n: the tail mean of ln X(i)/X(k+1) is
    # (1/alpha) (1/k) sum ln((k+1)/i) -> exactly computable.
    n, alpha = 2000, 3.0
    x = (np.arange(1, n + 1) / n) ** (-1.0 / alpha)
    k = 100
    h = sum(math.log((k + 1) / i) for i in range(1, k + 1)) / k / alpha
    assert analysis.hill_alpha(x) == pytest.approx(1.0 / h, rel=1e-12)


def test_hill_alpha_none_for_few_or_zero_tails():
    assert analysis.hill_alpha(np.arange(1.0, 30.0)) is None  # 29 values
    assert analysis.hill_alpha(np.arange(1.0, 100.0)) is None  # k = 4 < HILL_MIN_K
    assert analysis.hill_alpha(np.arange(1.0, 101.0)) is not None  # k = 5
    x = np.zeros(200)
    x[:5] = [1, 2, 3, 4, 5]  # X(k+1) = 0 with k = 10
    assert analysis.hill_alpha(x) is None


def test_trimmed_kurtosis_drops_the_three_largest_absolute_values():
    rng = np.random.default_rng(4)
    body = rng.standard_normal(500)
    x = np.concatenate([body[:100], [40.0], body[100:300], [-55.0], body[300:], [30.0]])
    assert analysis.excess_kurtosis(x) > 30
    assert analysis.trimmed_kurtosis(x) == pytest.approx(analysis.excess_kurtosis(body), rel=1e-12)
    assert analysis.trimmed_kurtosis(x, drop=0) == analysis.excess_kurtosis(x)
    assert analysis.trimmed_kurtosis(np.arange(32.0)) is None  # 29 left


def test_abs_volume_corr():
    r = np.array([0.01, -0.03, 0.0, 0.02, -0.01] * 8)
    assert analysis.abs_volume_corr(r, 5 + 100 * np.abs(r)) == pytest.approx(1.0)
    assert analysis.abs_volume_corr(r, 5 - 100 * np.abs(r)) == pytest.approx(-1.0)
    v = np.arange(40.0)
    a = np.abs(r)
    ref = np.sum((a - a.mean()) * (v - v.mean())) / math.sqrt(np.sum((a - a.mean()) ** 2) * np.sum((v - v.mean()) ** 2))
    assert analysis.abs_volume_corr(r, v) == pytest.approx(ref, rel=1e-12)
    assert analysis.abs_volume_corr(r, np.ones(40)) is None
    assert analysis.abs_volume_corr(r[:29], v[:29]) is None


def test_spread_ticks_and_fair_move_fraction():
    bid = np.array([99.98, 0.0, 99.95, 99.99])
    ask = np.array([100.02, 100.10, 100.05, 0.0])
    assert analysis.spread_ticks(bid, ask, 0.01) == pytest.approx(7.0)  # median of 4 and 10 ticks
    assert analysis.spread_ticks(bid, ask, 0.0) is None
    assert analysis.spread_ticks(np.zeros(3), ask[:3], 0.01) is None
    # pairs with both > 0: (100,100) no, (100,101) yes, (101,101) no, (102,103) yes
    assert analysis.fair_move_fraction(np.array([100, 100, 101, 101, 0, 102, 103.0])) == 0.5
    assert analysis.fair_move_fraction(np.zeros(10)) is None


def test_returns_and_volume_are_aligned_and_aggregated_by_block():
    price = np.exp(np.cumsum(np.r_[0.0, np.full(20, 0.01)]))
    prices = {"symbols": ["A"], "bid": price[:, None] * 0.999, "ask": price[:, None] * 1.001,
              "mid": price[:, None], "last": price[:, None], "volume": np.arange(21.0)[:, None]}
    r, v = analysis.returns_and_volume(prices)["A"]
    assert r == pytest.approx(np.full(20, 0.01)) and v.tolist() == list(range(1, 21))
    st = analysis.scale_statistics(r, v, 10)
    assert st["n"] == 2 and analysis.aggregate(v, 10).tolist() == [55.0, 155.0]
    assert st["kurtosis"] is None and st["hill_alpha"] is None and st["volume_corr"] is None


def test_multiscale_facts_on_a_heavy_tailed_clustered_series(tmp_path):
    rng = np.random.default_rng(5)
    n = 3001
    sigma = np.exp(np.convolve(rng.standard_normal(n + 200), np.ones(200) / 30, "valid")[:n - 1])  # slow volatility
    r = 0.001 * sigma * rng.standard_t(3, n - 1)
    run = write_run(tmp_path / "run", 100 * np.exp(np.r_[0.0, np.cumsum(r)]))
    ms = analysis.multiscale_facts(analysis.load_prices(run))
    assert ms["scales"] == [1, 10, 100]
    facts = {f["name"]: f["by_scale"] for f in ms["facts"]}
    assert facts["heavy tails"]["1"]["passed"] is True
    assert facts["volatility clustering"]["1"]["passed"] is True
    assert facts["no autocorrelation"]["1"]["passed"] is True
    assert facts["volume-volatility"]["1"] == {"value": None, "passed": None}  # constant volume
    assert 2.0 < facts["tail index"]["1"]["value"] < 5.0
    # 3000 returns: 30 blocks of 100 ticks, 27 after the top 3 are removed, k = 1 tail value
    na = {name for name, f in facts.items() if f["100"]["value"] is None}
    assert na == {"heavy tails, top 3 removed", "tail index", "volume-volatility"}
    assert ms["passed"] + ms["failed"] + ms["not_applicable"] == 3 * len(analysis.SCALE_FACTS)
    table = analysis.format_scale_table(ms)
    assert table.splitlines()[0].split()[:7] == ["fact", "1", "tick", "10", "ticks", "100", "ticks"]


def test_a_scale_with_fewer_than_30_returns_is_na(tmp_path):
    rng = np.random.default_rng(6)
    run = write_run(tmp_path / "run", 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(2999))))
    ms = analysis.multiscale_facts(analysis.load_prices(run))  # 2998 returns: 29 blocks of 100
    assert all(f["by_scale"]["100"]["passed"] is None for f in ms["facts"])
    assert ms["per_symbol"]["S0"]["100"]["n"] == 29


def test_market_values_read_tick_size_from_prices_csv(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with (run / "prices.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tick", "symbol", "sector", "last", "bid", "ask", "mid", "fair", "volume", "tick_size"])
        for t in range(40):
            fair = 100.0 + (t // 4) * 0.05  # moves on one tick in four
            w.writerow([t, "A", "m", 100, 99.9, 100.1, 100, fair, 1, 0.05])  # 0.2 wide: 4 ticks
    v = analysis.market_values(analysis.load_prices(run))
    assert v["spread_ticks"] == pytest.approx(4.0)
    assert v["fair_move_fraction"] == pytest.approx(9 / 39, abs=1e-6)


def test_write_prices_appends_the_tick_size(tmp_path):
    from qtg.reports.summary import PRICE_COLUMNS, write_prices
    from tests.support import make_config, run_sim

    run = run_sim(make_config(**{"market.tick_sizes": [0.01, 0.05] + [0.01] * 8}), ticks=5)
    write_prices(tmp_path / "prices.csv", run.sim, run.rec)
    rows = list(csv.reader((tmp_path / "prices.csv").open()))
    assert rows[0] == list(PRICE_COLUMNS) and PRICE_COLUMNS[-1] == "tick_size"
    assert rows[0][:9] == ["tick", "symbol", "sector", "last", "bid", "ask", "mid", "fair", "volume"]
    assert [r[-1] for r in rows[1:3]] == ["0.0100", "0.0500"]
    assert analysis.load_prices(tmp_path.parent / tmp_path.name)["tick_size"][0, :2].tolist() == [0.01, 0.05]


def test_validate_prints_the_scale_table_and_writes_it_to_the_json(tmp_path, capsys):
    import json

    from qtg import validate

    rng = np.random.default_rng(7)
    run = write_run(tmp_path / "run", 100 * np.exp(np.cumsum(0.001 * rng.standard_t(3, (400, 2)), axis=0)),
                    fair=100.0)
    assert validate.main([str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    i = lines.index("by time scale (returns summed over blocks of 1, 10, 100 ticks; n/a below 30 blocks):")
    assert [line.split("  ")[0] for line in lines[i + 3:i + 3 + len(analysis.SCALE_FACTS)]] == [
        name for name, *_ in analysis.SCALE_FACTS]
    data = json.loads((run / "stylized_facts.json").read_text())
    hl = data["market"]["half_life_ticks"]  # log(price / 100) is a random walk: b just below 1
    assert lines[-1] == (f"reported: mispricing half-life {hl:.2f} ticks, quoted spread - ticks (median), "
                         "fair value moves on 0.0% of ticks")  # no tick_size column; constant fair value
    assert data["scales"]["scales"] == [1, 10, 100] and len(data["facts"]) == 4  # the old keys stay
    assert data["scales"]["facts"][0]["by_scale"]["100"] == {"value": None, "passed": None}  # 3 blocks
    assert hl > 5 and data["market"]["spread_ticks"] is None and data["market"]["fair_move_fraction"] == 0.0


def test_ljung_box_matches_the_formula_written_out():
    rng = np.random.default_rng(8)
    x = np.abs(rng.standard_normal(400))
    c = analysis.acf(x, 10)
    n = len(x)
    ref = 0.0
    for k in range(1, 11):
        ref += c[k - 1] ** 2 / (n - k)
    assert analysis.ljung_box(c, n) == pytest.approx(n * (n + 2) * ref, rel=1e-12)
    assert analysis.clustering_q(c, n) == pytest.approx(analysis.ljung_box(c, n) * np.sign(c.mean()))
    assert analysis.clustering_q(c[:9], n) is None


def test_clustering_test_has_its_size_on_iid_series_and_power_on_regimes():
    """At 50 blocks (the 100-tick scale of 5,000 ticks): i.i.d. Student-t blocks pass in
    at most about 5% of series (the test's size; Q is conservative at 50 values, and the
    sign must be positive too), blocks from two volatility regimes four times apart pass
    in most (70% here)."""
    rng = np.random.default_rng(9)
    iid = [analysis.clustering_q(analysis.acf(np.abs(rng.standard_t(4, 50)), 10), 50) for _ in range(400)]
    size = np.mean([q > analysis.CLUSTER_Q_CRITICAL for q in iid])
    assert size < 0.06
    regimes = []
    for _ in range(200):
        sigma = np.where(np.arange(50) < rng.integers(10, 40), 1.0, 4.0)
        x = sigma * rng.standard_normal(50)
        regimes.append(analysis.clustering_q(analysis.acf(np.abs(x), 10), 50))
    assert np.mean([q > analysis.CLUSTER_Q_CRITICAL for q in regimes]) > 0.6


def test_winsorized_abs_caps_the_largest_at_the_next_in_place():
    x = np.array([0.5, -9.0, 1.0, 7.0, -2.0, 8.0, 3.0])
    assert analysis.winsorized_abs(x).tolist() == [0.5, 3.0, 1.0, 3.0, 2.0, 3.0, 3.0]
    assert analysis.winsorized_abs(x, top=1).tolist() == [0.5, 8.0, 1.0, 7.0, 2.0, 8.0, 3.0]
    assert analysis.winsorized_abs(np.array([1.0, -2.0])).tolist() == [1.0, 2.0]


def test_three_news_spikes_hide_clustering_that_the_capped_test_still_finds():
    """Two volatility regimes over 500 blocks pass both tests; three spikes of 60 calm
    standard deviations make the plain ACF of |r| almost flat (they hold most of its
    variance), and the capped test passes as before."""
    rng = np.random.default_rng(10)
    sigma = np.repeat(rng.choice([1.0, 3.0], 10), 50)
    x = sigma * rng.standard_normal(500)
    v = np.ones(500)
    clean = analysis.scale_statistics(x, v, 1)
    assert clean["clustering_q"] > analysis.CLUSTER_Q_CRITICAL
    assert clean["clustering_q_winsorized"] > analysis.CLUSTER_Q_CRITICAL
    spiked = x.copy()
    spiked[[100, 260, 420]] = [60.0, -60.0, 60.0]
    hit = analysis.scale_statistics(spiked, v, 1)
    assert hit["clustering_q"] < analysis.CLUSTER_Q_CRITICAL
    assert hit["clustering_q_winsorized"] > analysis.CLUSTER_Q_CRITICAL


def test_robust_band_matches_the_formula_and_the_iid_band():
    rng = np.random.default_rng(11)
    x = rng.standard_normal(40)
    d = x - x.mean()
    num = math.sqrt(sum((d[t] * d[t - 1]) ** 2 for t in range(1, 40)))
    assert analysis.robust_band_1(x) == pytest.approx(1.96 * num / sum(v * v for v in d), rel=1e-12)
    # i.i.d. Gaussian: sum d_t^2 d_{t-1}^2 ~ n sigma^4, so the band is the i.i.d. band
    y = rng.standard_normal(200_000)
    assert analysis.robust_band_1(y) == pytest.approx(analysis.band(len(y)), rel=0.02)
    assert analysis.robust_band_1(np.ones(100)) is None
    assert analysis.robust_band_1(x[:29]) is None


def test_robust_band_keeps_its_size_on_clustered_series_where_the_iid_band_does_not():
    """Returns with no autocorrelation but volatility regimes (a calm and a turbulent
    state 4x apart, 300-tick stays): at 10 ticks the i.i.d. band rejects 'no
    autocorrelation' far more often than 5%, the robust band about 5% of the time."""
    rng = np.random.default_rng(12)
    iid_fail = robust_fail = 0
    series = 200
    for _ in range(series):
        state = np.cumsum(rng.random(5000) < 1 / 300) % 2
        x = analysis.aggregate(np.where(state, 4.0, 1.0) * rng.standard_normal(5000), 10)
        c = abs(analysis.acf(x, 1)[0])
        iid_fail += c >= analysis.band(len(x))
        robust_fail += c >= analysis.robust_band_1(x)
    assert iid_fail / series > 0.10
    assert robust_fail / series < 0.09
