"""Per-agent risk statistics against slow NumPy references (plain loops per agent)."""

import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import qtg  # noqa: F401  (x64 on)
from components.risk import Exposure, RiskMetrics, RiskSpec, RiskState
from components.world import KindStatic, WorldStatic
from qtg.reports.risk import summarize_groups
from systems.risk import (
    beta,
    exposure,
    index_stats,
    init_risk,
    risk_metrics,
    symbol_correlation,
    update_risk,
)


def run(spec, path):
    """Feed ``path`` f64[T+1, N] (row 0 is the initial equity) through the system."""
    path = np.asarray(path, np.float64)
    state = init_risk(spec, jnp.asarray(path[0]))
    for e in path[1:]:
        state = update_risk(spec, state, jnp.asarray(e))
    return state, jax.tree.map(np.asarray, risk_metrics(spec, state))


def reference(spec, path):
    """Slow reference: one agent at a time, one tick at a time, numpy for the statistics."""
    path = np.asarray(path, np.float64)
    t1, n = path.shape
    out = {k: np.zeros(n) for k in ("total_return", "mean", "std", "sharpe", "mdd", "var")}
    out.update(count=np.zeros(n, int), sharpe_ready=np.zeros(n, bool), var_ready=np.zeros(n, bool))
    for i in range(n):
        e0 = path[0, i]
        peak, mdd, rets = e0, 0.0, []
        for t in range(1, t1):
            prev, e = path[t - 1, i], path[t, i]
            if prev > 0:
                rets.append(e / prev - 1.0)
            peak = max(peak, e)
            if peak > 0:
                mdd = max(mdd, (peak - e) / peak)
        rets = np.array(rets)
        out["count"][i] = len(rets)
        out["total_return"][i] = path[-1, i] / e0 - 1.0 if e0 > 0 else 0.0
        out["mdd"][i] = mdd
        if len(rets) >= 1:
            out["mean"][i] = rets.mean()
        if len(rets) >= 2:
            out["std"][i] = rets.std(ddof=1)
            if out["std"][i] > 0:
                out["sharpe_ready"][i] = True
                out["sharpe"][i] = out["mean"][i] / out["std"][i] * math.sqrt(spec.periods_per_year)
        if len(rets) >= spec.var_window:
            window = rets[-spec.var_window :].astype(np.float32)
            out["var_ready"][i] = True
            out["var"][i] = -np.quantile(window, 1.0 - spec.var_confidence)
    return out


def assert_matches(spec, path, m, ref):
    np.testing.assert_array_equal(m.equity, np.asarray(path)[-1])
    np.testing.assert_allclose(m.total_return, ref["total_return"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.max_drawdown, ref["mdd"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m.mean_return, ref["mean"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.std_return, ref["std"], rtol=1e-9, atol=1e-12)
    # Welford gives an exact 0 for repeated returns where numpy's two-pass std may leave
    # rounding dust: compare the flag only where the reference is clearly 0 or not.
    clear = (ref["std"] == 0) | (ref["std"] > 1e-12)
    np.testing.assert_array_equal(m.sharpe_ready[clear], ref["sharpe_ready"][clear])
    both = m.sharpe_ready & ref["sharpe_ready"]
    np.testing.assert_allclose(m.sharpe[both], ref["sharpe"][both], rtol=1e-7, atol=1e-9)
    assert (m.sharpe[~m.sharpe_ready] == 0).all()
    np.testing.assert_array_equal(m.var_ready, ref["var_ready"])
    # VaR from float32 returns: numpy interpolates in float32, we in float64.
    np.testing.assert_allclose(m.var, ref["var"], rtol=1e-5, atol=1e-6)
    assert (m.var[~m.var_ready] == 0).all()


# ---------------------------------------------------------------- spec


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(var_window=1), "var_window"),
        (dict(var_window=10.0), "var_window"),
        (dict(var_window=True), "var_window"),
        (dict(var_confidence=0.0), "var_confidence"),
        (dict(var_confidence=1.0), "var_confidence"),
        (dict(var_confidence=-0.5), "var_confidence"),
        (dict(periods_per_year=0.0), "periods_per_year"),
        (dict(periods_per_year=-252.0), "periods_per_year"),
        (dict(periods_per_year=float("inf")), "periods_per_year"),
    ],
)
def test_spec_rejects_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        RiskSpec(**kwargs)


def test_spec_defaults_are_static():
    spec = RiskSpec()
    assert (spec.var_window, spec.var_confidence, spec.periods_per_year) == (50, 0.95, 1.0)
    assert hash(spec) == hash(RiskSpec())  # usable as a static jit argument


def test_state_layout_and_memory_at_one_million():
    """Few leaves; bounded memory: 276 bytes per agent at W = 50 (window in float32), plus
    S*S + 2*S + 1 shared values for the symbol statistics."""
    spec = RiskSpec()
    equity0 = jax.ShapeDtypeStruct((1_000_000,), jnp.float64)
    last0 = jax.ShapeDtypeStruct((10,), jnp.int64)
    shapes = jax.eval_shape(lambda e, p: init_risk(spec, e, p), equity0, last0)  # no allocation
    leaves = jax.tree.leaves(shapes)
    assert len(leaves) == 15
    assert shapes.window.shape == (1_000_000, 50) and shapes.window.dtype == jnp.float32
    assert shapes.symbol_comoment.shape == (10, 10)
    nbytes = sum(math.prod(x.shape) * x.dtype.itemsize for x in leaves)
    assert nbytes == 1_000_000 * (9 * 8 + 4 + 50 * 4) + (10 * 10 + 10 + 10) * 8 + 4  # 276 MB


def test_init_rejects_non_vector():
    with pytest.raises(ValueError, match="shape"):
        init_risk(RiskSpec(), jnp.ones((2, 3)))


# ---------------------------------------------------------------- known values


def test_max_drawdown_of_a_known_path():
    path = np.array([100.0, 120.0, 90.0, 150.0, 100.0, 160.0, 130.0])[:, None]
    # peaks 100 120 120 150 150 160 160; drawdowns 0 0 .25 0 1/3 0 .1875
    expected_running = [0.0, 0.0, 0.25, 0.25, 50.0 / 150.0, 50.0 / 150.0, 50.0 / 150.0]
    spec = RiskSpec(var_window=3)
    state = init_risk(spec, jnp.asarray(path[0]))
    for t in range(1, len(path)):
        state = update_risk(spec, state, jnp.asarray(path[t]))
        assert float(state.max_drawdown[0]) == expected_running[t]
    assert float(state.peak[0]) == 160.0
    m = jax.tree.map(np.asarray, risk_metrics(spec, state))
    assert m.max_drawdown[0] == 50.0 / 150.0
    assert m.total_return[0] == 130.0 / 100.0 - 1.0
    assert_matches(spec, path, m, reference(spec, path))


def test_sharpe_of_a_known_series():
    rets = np.array([0.01, -0.02, 0.015, 0.003, -0.007, 0.02, 0.0, -0.011, 0.004, 0.009])
    path = (1e9 * np.concatenate([[1.0], np.cumprod(1.0 + rets)]))[:, None]
    spec = RiskSpec(var_window=5, periods_per_year=252.0)
    _, m = run(spec, path)
    want = rets.mean() / rets.std(ddof=1) * math.sqrt(252.0)
    assert m.sharpe_ready[0]
    np.testing.assert_allclose(m.mean_return[0], rets.mean(), rtol=1e-9)
    np.testing.assert_allclose(m.std_return[0], rets.std(ddof=1), rtol=1e-9)
    np.testing.assert_allclose(m.sharpe[0], want, rtol=1e-8)
    assert_matches(spec, path, m, reference(spec, path))


def test_var_against_numpy_quantile_before_and_after_the_ring_wraps():
    spec = RiskSpec(var_window=50, var_confidence=0.95)  # virtual index 2.45: lerp from below
    rng = np.random.default_rng(7)
    n, ticks = 4, 50 + 23
    rets = np.stack(
        [
            rng.normal(0.0, 0.02, ticks),
            rng.standard_t(3, ticks) * 0.01,
            rng.uniform(0.001, 0.05, ticks),  # every return a gain: VaR < 0
            rng.normal(-0.01, 0.005, ticks),
        ],
        axis=1,
    )
    path = 1e8 * np.concatenate([np.ones((1, n)), np.cumprod(1.0 + rets, axis=0)])
    state = init_risk(spec, jnp.asarray(path[0]))
    for t in range(1, ticks + 1):
        state = update_risk(spec, state, jnp.asarray(path[t]))
        m = jax.tree.map(np.asarray, risk_metrics(spec, state))
        if t < spec.var_window:
            assert not m.var_ready.any() and (m.var == 0).all()
            continue
        ref = reference(spec, path[: t + 1])
        window = (path[1 : t + 1] / path[:t] - 1.0)[-spec.var_window :].astype(np.float32)
        want = -np.quantile(window, 0.05, axis=0)
        assert m.var_ready.all()
        np.testing.assert_allclose(m.var, want, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(m.var, ref["var"], rtol=1e-5, atol=1e-7)
        # The ring holds exactly the last W returns (in ring order).
        np.testing.assert_array_equal(
            np.sort(np.asarray(state.window), axis=1), np.sort(window.T, axis=1)
        )
    assert m.var[2] < 0  # sign kept: even the tail of the window is a gain
    assert (m.var[[0, 1, 3]] > 0).all()
    assert_matches(spec, path, m, reference(spec, path))


def test_var_interpolates_like_numpy_from_above():
    """Virtual index 0.7 * ... >= .5 past the lower neighbour: numpy lerps from the top."""
    spec = RiskSpec(var_window=8, var_confidence=0.9)  # virtual index 0.7
    rets = np.array([0.03, -0.05, 0.01, -0.02, 0.04, -0.01, 0.02, -0.04, 0.005, -0.03])
    path = (100.0 * np.concatenate([[1.0], np.cumprod(1.0 + rets)]))[:, None]
    _, m = run(spec, path)
    window = (path[1:, 0] / path[:-1, 0] - 1.0)[-8:].astype(np.float32)
    np.testing.assert_allclose(m.var[0], -np.quantile(window, 0.1), rtol=1e-6)


# ---------------------------------------------------------------- edge cases


def test_zero_and_negative_equity_guards():
    path = np.array(
        [
            # a: falls through zero; returns only where the previous equity is > 0
            # b: starts negative (no base, peak <= 0 until it turns positive)
            # c: starts at zero
            [100.0, -50.0, 0.0],
            [0.0, -10.0, 0.0],
            [50.0, 20.0, 10.0],
            [-20.0, 10.0, 20.0],
            [10.0, 30.0, 5.0],
            [20.0, 15.0, 10.0],
        ]
    )
    spec = RiskSpec(var_window=2)
    state, m = run(spec, path)
    # a: returns -1 (100->0), -1.4 (50->-20), +1 (10->20); 0->50 and -20->10 are skipped
    # b: returns only after 20: -0.5, 2.0, -0.5; c: 1.0, -0.75, 1.0
    np.testing.assert_array_equal(np.asarray(state.count), [3, 3, 3])
    np.testing.assert_allclose(m.mean_return[0], np.mean([-1.0, -1.4, 1.0]), rtol=1e-12)
    # a: peak 100, worst at -20: (100 + 20) / 100 = 1.2 (below zero: more than 100%)
    # b: peak <= 0 contributes nothing; then peak 30, low 15: 0.5. c: peak 20, low 5: .75
    np.testing.assert_allclose(m.max_drawdown, [1.2, 0.5, 0.75], rtol=1e-12)
    np.testing.assert_array_equal(m.total_return[1:], [0.0, 0.0])  # no positive base
    for leaf in jax.tree.leaves(m):
        assert np.isfinite(leaf).all()
    assert_matches(spec, path, m, reference(spec, path))


def test_flat_equity_is_not_sharpe_ready():
    spec = RiskSpec(var_window=4)
    path = np.full((10, 3), 5e8)
    _, m = run(spec, path)
    assert not m.sharpe_ready.any()
    np.testing.assert_array_equal(m.sharpe, 0.0)
    np.testing.assert_array_equal(m.std_return, 0.0)
    np.testing.assert_array_equal(m.max_drawdown, 0.0)
    assert m.var_ready.all() and (m.var == 0).all()


def test_one_return_is_not_ready():
    spec = RiskSpec(var_window=2)
    _, m = run(spec, np.array([[100.0], [110.0]]))
    assert not m.sharpe_ready[0] and not m.var_ready[0]
    assert m.sharpe[0] == 0 and m.std_return[0] == 0 and m.var[0] == 0
    np.testing.assert_allclose(m.mean_return[0], 0.1, rtol=1e-12)


# ---------------------------------------------------------------- random paths


# Equity is fixed-point money (whole units of 1/10,000), so integer-valued.
_EQUITY = st.one_of(
    st.integers(1, 10**9),
    st.integers(-1000, 1000),
    st.sampled_from([0, -1, 1, 100]),
).map(float)


@settings(max_examples=40, deadline=None)
@given(path=arrays(np.float64, (25, 6), elements=_EQUITY))
def test_random_paths_match_the_reference(path):
    """Several agents at once, ring wrapped (24 ticks, W = 8), zero/negative equity mixed in."""
    spec = RiskSpec(var_window=8, var_confidence=0.9, periods_per_year=4.0)
    _, m = run(spec, path)
    assert_matches(spec, path, m, reference(spec, path))


def test_random_walks_match_the_reference():
    spec = RiskSpec(var_window=10, var_confidence=0.95, periods_per_year=252.0)
    rng = np.random.default_rng(3)
    steps = 1.0 + rng.normal(0.0005, 0.02, (40, 50))
    path = 1e9 * np.concatenate([np.ones((1, 50)), np.cumprod(steps, axis=0)])
    _, m = run(spec, path)
    assert m.sharpe_ready.all() and m.var_ready.all()
    assert_matches(spec, path, m, reference(spec, path))


# ---------------------------------------------------------------- compilation


def test_update_and_metrics_compile_once():
    spec = RiskSpec(var_window=6)
    update = jax.jit(chex.assert_max_traces(update_risk.__wrapped__, n=1), static_argnums=0)
    metrics = jax.jit(chex.assert_max_traces(risk_metrics.__wrapped__, n=1), static_argnums=0)
    rng = np.random.default_rng(0)
    state = init_risk(spec, jnp.full(16, 1e6))
    for _ in range(12):
        state = update(spec, state, jnp.asarray(1e6 * rng.uniform(0.5, 1.5, 16)))
        m = metrics(spec, state)
    assert isinstance(state, RiskState) and isinstance(m, RiskMetrics)
    assert m.var_ready.all()


def test_update_inside_scan_matches_the_loop():
    """update_risk composes into a larger jitted program (the tick) unchanged."""
    spec = RiskSpec(var_window=5)
    rng = np.random.default_rng(1)
    path = jnp.asarray(1e6 * rng.uniform(0.5, 1.5, (15, 8)))

    @jax.jit
    def rollout(path):
        step = lambda s, e: (update_risk(spec, s, e), None)  # noqa: E731
        return jax.lax.scan(step, init_risk(spec, path[0]), path[1:])[0]

    scanned = rollout(path)
    looped, _ = run(spec, np.asarray(path))
    chex.assert_trees_all_close(scanned, looped, rtol=1e-12)


# ---------------------------------------------------------------- report summary


def test_summarize_groups():
    spec = RiskSpec(var_window=5)
    rng = np.random.default_rng(2)
    steps = 1 + rng.normal(0, 0.02, (12, 10))
    path = 1e6 * np.concatenate([np.ones((1, 10)), np.cumprod(steps, axis=0)])
    path[:, 7:] = 1e6  # flat rows: never Sharpe-ready
    path[4:, 3] = 0.0  # row 3: 4 returns (the last -100%), then none: not VaR-ready
    _, m = run(spec, path)
    groups = [("momentum", 0, 4), ("noise", 4, 10), ("none", 10, 10)]
    out = summarize_groups(m, groups)
    json.dumps(out, allow_nan=False)
    assert list(out) == ["momentum", "noise", "none"]
    assert out["momentum"]["count"] == 4 and out["noise"]["count"] == 6
    for name, start, stop in groups[:2]:
        rows = slice(start, stop)
        for key, values in [
            ("sharpe", m.sharpe[rows][m.sharpe_ready[rows]]),
            ("var", m.var[rows][m.var_ready[rows]]),
            ("max_drawdown", m.max_drawdown[rows]),
            ("total_return", m.total_return[rows]),
        ]:
            got = out[name][key]
            assert got["count"] == values.size
            for stat in ("mean", "median", "min", "max"):
                assert type(got[stat]) is float
                np.testing.assert_allclose(got[stat], getattr(np, stat)(values), rtol=1e-12)
    assert out["noise"]["sharpe"]["count"] == 3  # rows 7..9 are flat
    assert out["momentum"]["var"]["count"] == 3  # row 3 has too few returns
    empty = {"count": 0, "mean": None, "median": None, "min": None, "max": None}
    assert out["none"]["sharpe"] == empty and out["none"]["count"] == 0
    with pytest.raises(ValueError, match="appears twice"):
        summarize_groups(m, [("a", 0, 2), ("a", 2, 4)])
    with pytest.raises(ValueError, match="not within"):
        summarize_groups(m, [("a", 5, 11)])


# ---------------------------------------------------------------- portfolio risk


def run_portfolio(spec, path, prices):
    """Feed equity ``path`` f64[T+1, N] and last ``prices`` i64[T+1, S] (row 0: the opening)
    through the system one tick at a time."""
    state = init_risk(spec, jnp.asarray(path[0], jnp.float64), jnp.asarray(prices[0]))
    for e, p in zip(path[1:], prices[1:]):
        state = update_risk(spec, state, jnp.asarray(e, jnp.float64), jnp.asarray(p))
    return state


def portfolio_reference(path, prices):
    """Slow reference over the whole history: symbol and index returns per tick, then per
    agent np.cov / np.var over the ticks where its previous equity is > 0."""
    path, prices = np.asarray(path, np.float64), np.asarray(prices, np.float64)
    sym = prices[1:] / prices[:-1] - 1.0  # [T, S]
    index = sym.mean(axis=1)  # [T]
    betas = np.full(path.shape[1], np.nan)
    for i in range(path.shape[1]):
        ok = path[:-1, i] > 0
        a = path[1:, i][ok] / path[:-1, i][ok] - 1.0
        m = index[ok]
        if a.size >= 2 and np.var(m) > 0:
            betas[i] = np.cov(a, m, ddof=1)[0, 1] / np.var(m, ddof=1)
    return sym, index, betas


def market_paths(seed, ticks=60, n_sym=5):
    """Integer price walks (units, around 100.00) and equity paths with known features."""
    rng = np.random.default_rng(seed)
    steps = 1.0 + rng.normal(0.0, 0.01, (ticks, n_sym)) + rng.normal(0.0, 0.005, (ticks, 1))
    prices = np.round(1_000_000 * np.concatenate([np.ones((1, n_sym)), np.cumprod(steps, axis=0)]))
    prices = prices.astype(np.int64)
    index = (prices[1:] / prices[:-1] - 1.0).mean(axis=1)
    n = 7
    path = np.empty((ticks + 1, n))
    path[0] = 1e9
    noise = rng.normal(0.0, 0.004, (ticks, n))
    path[1:, 0] = 1e9 * np.cumprod(1.0 + 2.0 * index + 0.0001)  # beta exactly 2
    path[1:, 1] = 1e9 * np.cumprod(1.0 - 0.5 * index + noise[:, 1])  # about -0.5
    path[1:, 2] = 1e9 * np.cumprod(1.0 + noise[:, 2])  # about 0
    path[1:, 3] = 1e9  # flat: beta 0
    path[1:, 4] = 1e9 * np.cumprod(1.0 + index + noise[:, 4])
    path[[3, 4, ticks // 2], 4] = [0.0, -5e8, 0.0]  # skipped ticks: no return after e <= 0
    path[1:, 5] = 1e9 * np.cumprod(1.0 + rng.normal(0, 0.02, ticks))
    path[:, 6] = 0.0  # zero equity until the last tick's return: one return, no beta
    path[-2:, 6] = [1e9, 1.1e9]
    return path, prices


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beta_matches_numpy_cov_over_the_same_ticks(seed):
    spec = RiskSpec(var_window=5)
    path, prices = market_paths(seed)
    state = run_portfolio(spec, path, prices)
    got = np.asarray(beta(state))
    _, _, want = portfolio_reference(path, prices)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got[6]) and np.isfinite(got[:6]).all()
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got[0], 2.0, rtol=1e-9)
    assert got[3] == 0.0
    assert int(state.count[4]) == 60 - 3  # the skipped ticks really were skipped


def test_beta_is_nan_before_two_ticks_and_for_a_flat_index():
    spec = RiskSpec(var_window=2)
    state = init_risk(spec, jnp.full(3, 1e6), jnp.full(4, 1_000_000, jnp.int64))
    assert np.isnan(np.asarray(beta(state))).all()
    state = update_risk(spec, state, jnp.asarray([1.1e6, 0.9e6, 1e6]), jnp.full(4, 1_010_000))
    assert np.isnan(np.asarray(beta(state))).all()  # one index return: no variance yet
    # The index returns 0.01 then 0.0 then 0.0: var > 0 from the second tick on.
    state = update_risk(spec, state, jnp.asarray([1.2e6, 0.8e6, 1e6]), jnp.full(4, 1_010_000))
    assert np.isfinite(np.asarray(beta(state))).all()
    # A market that never moves: beta undefined for everyone.
    flat = run_portfolio(spec, 1e6 * np.arange(1, 6)[:, None] * np.ones((1, 3)),
                         np.full((5, 2), 1_000_000, np.int64))
    assert np.isnan(np.asarray(beta(flat))).all()


@pytest.mark.parametrize("seed", [0, 3])
def test_symbol_correlation_matches_corrcoef(seed):
    spec = RiskSpec(var_window=5)
    path, prices = market_paths(seed, ticks=80, n_sym=6)
    state = run_portfolio(spec, path, prices)
    sym, index, _ = portfolio_reference(path, prices)
    corr = np.asarray(symbol_correlation(state))
    np.testing.assert_allclose(corr, np.corrcoef(sym.T), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(corr, corr.T)
    np.testing.assert_array_equal(np.diag(corr), 1.0)
    assert int(state.symbol_count) == 80
    mean, std = (float(x) for x in index_stats(state))
    np.testing.assert_allclose(mean, index.mean(), rtol=1e-9)
    np.testing.assert_allclose(std, index.std(ddof=1), rtol=1e-9)


def test_symbol_correlation_of_a_constant_symbol():
    """A symbol that never trades has zero variance: its off-diagonal entries are NaN and
    its diagonal 1; the others are unaffected (it still counts as a 0 return in the index)."""
    spec = RiskSpec(var_window=5)
    path, prices = market_paths(4, ticks=30, n_sym=4)
    prices[:, 2] = prices[0, 2]
    state = run_portfolio(spec, path, prices)
    corr = np.asarray(symbol_correlation(state))
    sym, index, betas = portfolio_reference(path, prices)
    live = [0, 1, 3]
    np.testing.assert_allclose(corr[np.ix_(live, live)], np.corrcoef(sym[:, live].T), rtol=1e-9)
    assert corr[2, 2] == 1.0
    assert np.isnan(np.delete(corr[2], 2)).all() and np.isnan(np.delete(corr[:, 2], 2)).all()
    np.testing.assert_allclose(np.asarray(beta(state)), betas, rtol=1e-9, atol=1e-12)
    empty = init_risk(spec, jnp.ones(2), jnp.full(3, 1_000_000))
    fresh = np.asarray(symbol_correlation(empty))
    assert (np.diag(fresh) == 1).all() and np.isnan(fresh[~np.eye(3, dtype=bool)]).all()
    assert all(np.isnan(float(x)) for x in index_stats(empty))


def test_exposure_by_symbol_and_sector_with_a_short():
    position = jnp.asarray([[10, -5, 0], [-3, 2, 7]], jnp.int64)
    last = jnp.asarray([1_000_000, 505_000, 12_345], jnp.int64)  # 100.00, 50.50, 1.2345
    ex = jax.tree.map(np.asarray, exposure(position, last, (0, 1, 0), 3))  # sector 2 empty
    assert isinstance(exposure(position, last, (0, 1, 0), 3), Exposure)
    np.testing.assert_allclose(ex.by_symbol, [[1000.0, -252.5, 0.0], [-300.0, 101.0, 8.6415]],
                               rtol=1e-15)
    # Agent 0: tech 1000 long; energy 252.50 short. Agent 1: tech -300 + 8.6415, energy 101.
    np.testing.assert_allclose(ex.by_sector, [[1000.0, -252.5, 0.0], [-291.3585, 101.0, 0.0]],
                               rtol=1e-12)
    np.testing.assert_allclose(ex.gross_by_sector, [[1000.0, 252.5, 0.0], [308.6415, 101.0, 0.0]],
                               rtol=1e-12)
    np.testing.assert_allclose(ex.gross, [1252.5, 409.6415], rtol=1e-12)
    np.testing.assert_allclose(ex.net, [747.5, -190.3585], rtol=1e-12)
    with pytest.raises(ValueError, match="sector_of"):
        exposure(position, last, (0, 1, 3), 3)
    with pytest.raises(ValueError, match="price"):
        exposure(position, last[:2], (0, 1), 2)


def test_portfolio_state_does_not_grow_with_ticks():
    spec = RiskSpec(var_window=4)
    path, prices = market_paths(5, ticks=40, n_sym=3)
    state = init_risk(spec, jnp.asarray(path[0]), jnp.asarray(prices[0]))
    shapes0 = [(x.shape, x.dtype) for x in jax.tree.leaves(state)]
    for t in range(1, 41):
        state = update_risk(spec, state, jnp.asarray(path[t]), jnp.asarray(prices[t]))
        assert [(x.shape, x.dtype) for x in jax.tree.leaves(state)] == shapes0
    assert state.prev_last.shape == (3,) and state.symbol_comoment.shape == (3, 3)
    assert state.comoment.shape == (7,)
    np.testing.assert_array_equal(np.asarray(state.prev_last), prices[-1])


def test_update_without_prices_leaves_portfolio_statistics_alone():
    spec = RiskSpec(var_window=3)
    path, prices = market_paths(6, ticks=10, n_sym=2)
    state = run_portfolio(spec, path[:6], prices[:6])
    after = update_risk(spec, state, jnp.asarray(path[6]))
    for name in ("index_mean", "index_m2", "comoment", "prev_last", "symbol_count",
                 "symbol_mean", "symbol_comoment"):
        np.testing.assert_array_equal(
            np.asarray(getattr(after, name)), np.asarray(getattr(state, name))
        )
    assert (np.asarray(after.count) >= np.asarray(state.count)).all()
    with pytest.raises(ValueError, match="last0"):
        update_risk(spec, init_risk(spec, jnp.ones(2)), jnp.ones(2), jnp.ones(3, jnp.int64))


def test_portfolio_update_compiles_once_and_scans():
    spec = RiskSpec(var_window=4)
    update = jax.jit(chex.assert_max_traces(update_risk.__wrapped__, n=1), static_argnums=0)
    path, prices = market_paths(7, ticks=15, n_sym=3)
    state = init_risk(spec, jnp.asarray(path[0]), jnp.asarray(prices[0]))
    for t in range(1, 16):
        state = update(spec, state, jnp.asarray(path[t]), jnp.asarray(prices[t]))

    @jax.jit
    def rollout(path, prices):
        step = lambda s, x: (update_risk(spec, s, *x), None)  # noqa: E731
        return jax.lax.scan(step, init_risk(spec, path[0], prices[0]), (path[1:], prices[1:]))[0]

    scanned = rollout(jnp.asarray(path), jnp.asarray(prices))
    chex.assert_trees_all_close(scanned, state, rtol=1e-12)
    chex.assert_trees_all_close(scanned, run_portfolio(spec, path, prices), rtol=1e-12)


# ---------------------------------------------------------------- portfolio report


def portfolio_world(seed=0):
    """A WorldStatic and a stand-in for the WorldState fields the report reads."""
    from types import SimpleNamespace

    spec = RiskSpec(var_window=4)
    path, prices = market_paths(seed, ticks=50, n_sym=4)
    static = WorldStatic(
        n_agents=7, n_symbols=4, symbols=("AAA", "BBB", "CCC", "DDD"),
        kinds=(KindStatic("alpha", 0, 3, 1, 0), KindStatic("beta_kind", 3, 4, 1, 3)),
        sectors=("tech", "energy", "idle"), sector_of=(0, 1, 0, 1), risk=spec,
    )
    position = np.array(
        [[10, 0, -4, 0], [0, 5, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0], [-2, 3, 0, -1], [7, 0, 0, 0],
         [0, 0, 0, 9]], np.int64,
    )
    state = SimpleNamespace(
        risk=run_portfolio(spec, path, prices),
        wallet=SimpleNamespace(position=jnp.asarray(position)),
        market=SimpleNamespace(last=jnp.asarray(prices[-1])),
    )
    return static, state, path, prices, position


def test_portfolio_summary_and_columns():
    from qtg.reports.portfolio import portfolio_columns, portfolio_summary

    static, state, path, prices, position = portfolio_world()
    out = portfolio_summary(static, state)
    json.dumps(out, allow_nan=False)
    sym, index, betas = portfolio_reference(path, prices)
    ref_corr = np.corrcoef(sym.T)
    np.testing.assert_allclose(np.array(out["correlation"], float), ref_corr, atol=0.5e-4 + 1e-12)
    assert out["symbols"] == ["AAA", "BBB", "CCC", "DDD"]
    assert out["sectors"] == ["tech", "energy", "tech", "energy"]
    np.testing.assert_allclose(out["correlation_within_sector"],
                               (ref_corr[0, 2] + ref_corr[1, 3]) / 2, rtol=1e-3)
    across = [ref_corr[0, 1], ref_corr[0, 3], ref_corr[1, 2], ref_corr[2, 3]]
    np.testing.assert_allclose(out["correlation_across_sectors"], np.mean(across), rtol=1e-3)
    assert out["index"]["ticks"] == 50
    np.testing.assert_allclose(out["index"]["mean"], index.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["index"]["vol"], index.std(ddof=1), rtol=1e-5)

    value = position * prices[-1] / 10_000.0
    for name, rows in [("alpha", slice(0, 3)), ("beta_kind", slice(3, 7))]:
        got = out["by_kind"][name]
        kb = betas[rows][np.isfinite(betas[rows])]
        assert got["beta"]["count"] == kb.size
        np.testing.assert_allclose(got["beta"]["mean"], kb.mean(), rtol=1e-5)
        np.testing.assert_allclose(got["beta"]["median"], np.median(kb), rtol=1e-5)
        np.testing.assert_allclose(got["gross_exposure"], np.abs(value[rows]).sum(1).mean(),
                                   atol=1e-4)
        np.testing.assert_allclose(got["net_exposure"], value[rows].sum(1).mean(), atol=1e-4)
        tech = value[rows][:, [0, 2]]
        np.testing.assert_allclose(got["by_sector"]["tech"]["net"], tech.sum(1).mean(), atol=1e-4)
        np.testing.assert_allclose(got["by_sector"]["tech"]["gross"], np.abs(tech).sum(1).mean(),
                                   atol=1e-4)
        assert got["by_sector"]["idle"] == {"gross": 0.0, "net": 0.0}
    assert out["by_kind"]["beta_kind"]["beta"]["count"] == 3  # row 6 has no beta

    cols = portfolio_columns(static, state)
    assert list(cols) == ["beta", "gross_exposure", "net_exposure", "exposure_tech",
                          "exposure_energy", "exposure_idle"]
    np.testing.assert_allclose(cols["beta"], betas, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cols["gross_exposure"], np.abs(value).sum(1), rtol=1e-12)
    np.testing.assert_allclose(cols["net_exposure"], value.sum(1), rtol=1e-12)
    np.testing.assert_allclose(cols["exposure_energy"], value[:, [1, 3]].sum(1), rtol=1e-12)
    assert all(c.shape == (7,) for c in cols.values())


def test_plot_correlation_writes_a_png(tmp_path):
    from qtg.reports.portfolio import plot_correlation

    static, state, *_ = portfolio_world(1)
    out = tmp_path / "correlation.png"
    plot_correlation(static, state, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
