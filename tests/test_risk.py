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
from components.risk import RiskMetrics, RiskSpec, RiskState
from systems.risk import init_risk, risk_metrics, summarize_groups, update_risk


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
    """Few leaves; bounded memory: 252 bytes per agent at W = 50 (window in float32)."""
    spec = RiskSpec()
    equity0 = jax.ShapeDtypeStruct((1_000_000,), jnp.float64)
    shapes = jax.eval_shape(lambda e: init_risk(spec, e), equity0)  # no allocation
    leaves = jax.tree.leaves(shapes)
    assert len(leaves) == 8
    assert shapes.window.shape == (1_000_000, 50) and shapes.window.dtype == jnp.float32
    nbytes = sum(math.prod(x.shape) * x.dtype.itemsize for x in leaves)
    assert nbytes == 1_000_000 * (6 * 8 + 4 + 50 * 4)  # 252 MB


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
