"""Indicators against slow references written from the textbook definitions.

The references are plain Python loops over one series; a value is ``None`` until the
definition gives one, which is how the references define readiness independently of the
implementation. Prices are integer cents / 100, as the world feeds them (fixed point
converted to float), so equal prices are equal floats.
"""

import statistics

import chex
import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qtg  # noqa: F401  (x64 on)
from components.indicators import IndicatorSpec
from systems.indicators import (
    init_indicators,
    read_indicators,
    update_and_read,
    update_indicators,
)

TOL = dict(rtol=1e-9, atol=1e-9)

# ---------------------------------------------------------------------------------------
# References: one series (lists of floats), textbook formulas, value None until defined.


def ref_sma(close, p):
    return [sum(close[t - p + 1 : t + 1]) / p if t >= p - 1 else None for t in range(len(close))]


def ref_ema(close, p):
    alpha, out, e = 2.0 / (p + 1), [], None
    for t, c in enumerate(close):
        if t == p - 1:
            e = sum(close[:p]) / p
        elif t >= p:
            e = alpha * c + (1 - alpha) * e
        out.append(e)
    return out


def ref_rsi(close, p):
    out, avg_gain, avg_loss = [None], None, None
    gains, losses = [], []
    for t in range(1, len(close)):
        change = close[t] - close[t - 1]
        gains.append(max(change, 0.0))
        losses.append(max(-change, 0.0))
        if len(gains) == p:
            avg_gain, avg_loss = sum(gains) / p, sum(losses) / p
        elif len(gains) > p:
            avg_gain = (avg_gain * (p - 1) + gains[-1]) / p
            avg_loss = (avg_loss * (p - 1) + losses[-1]) / p
        if avg_gain is None:
            out.append(None)
        elif avg_loss == 0 and avg_gain == 0:
            out.append(50.0)
        elif avg_loss == 0:
            out.append(100.0)
        else:
            out.append(100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    return out


def ref_macd(close, fast, slow, signal):
    ef, es = ref_ema(close, fast), ref_ema(close, slow)
    line = [None if f is None or s is None else f - s for f, s in zip(ef, es)]
    values = [v for v in line if v is not None]
    sig_of_values = ref_ema(values, signal)  # the signal is an EMA of the line's own values
    sig = [None] * (len(line) - len(values)) + sig_of_values
    hist = [None if s is None else v - s for v, s in zip(line, sig)]
    return line, sig, hist


def ref_bollinger(close, p, k):
    middle, upper, lower, pct_b = [], [], [], []
    for t in range(len(close)):
        if t < p - 1:
            for out in (middle, upper, lower, pct_b):
                out.append(None)
            continue
        window = close[t - p + 1 : t + 1]
        m = sum(window) / p
        sd = statistics.pstdev(window)  # exact for a constant window: 0.0
        up, lo = m + k * sd, m - k * sd
        middle.append(m)
        upper.append(up)
        lower.append(lo)
        pct_b.append(0.5 if up == lo else (close[t] - lo) / (up - lo))
    return middle, upper, lower, pct_b


def ref_atr(high, low, close, p):
    out, trs, atr = [], [], None
    for t in range(len(close)):
        if t == 0:
            tr = high[0] - low[0]
        else:
            pc = close[t - 1]
            tr = max(high[t] - low[t], abs(high[t] - pc), abs(low[t] - pc))
        trs.append(tr)
        if t == p - 1:
            atr = sum(trs) / p
        elif t >= p:
            atr = (atr * (p - 1) + tr) / p
        out.append(atr)
    return out


# ---------------------------------------------------------------------------------------
# Running the implementation over whole series: one jitted scan per (spec, shape).


def _run(spec, close, high, low):
    """Indicators after every bar, stacked: fields [T, S, P]. Inputs f64[T, S]."""

    def body(state, bar):
        state, ind = update_and_read(spec, state, *bar)
        return state, ind

    _, out = jax.lax.scan(body, init_indicators(spec, close.shape[1]), (close, high, low))
    return out


run = jax.jit(_run, static_argnums=0)


def bars_from_cents(cents):
    """close/high/low f64[T, S] from integer closes in cents [T, S]; high/low straddle it."""
    cents = np.asarray(cents, np.int64)
    rng = np.random.default_rng(int(cents.sum()) % 2**32)
    up = rng.integers(0, 4, cents.shape)
    down = rng.integers(0, 4, cents.shape)
    return cents / 100.0, (cents + up) / 100.0, (cents - down) / 100.0


def random_walk(seed, t, s, step=25, tie_p=0.0):
    rng = np.random.default_rng(seed)
    moves = rng.integers(-step, step + 1, (t, s))
    moves[rng.random((t, s)) < tie_p] = 0
    return 10_000 + np.cumsum(moves, axis=0)


def to_value_ready(ref):
    ready = np.array([v is not None for v in ref])
    value = np.array([0.0 if v is None else v for v in ref])
    return value, ready


def check(got_value, got_ready, ref, what):
    """One series of one symbol: ready flags equal, values close where ready, 0 elsewhere."""
    value, ready = to_value_ready(ref)
    got_value, got_ready = np.asarray(got_value), np.asarray(got_ready)
    np.testing.assert_array_equal(got_ready, ready, err_msg=f"{what}: ready")
    np.testing.assert_allclose(got_value, value, **TOL, err_msg=f"{what}: value")
    assert np.isfinite(got_value).all(), what


def check_all(spec, close, high, low):
    """Every series of the spec, every symbol, every bar, against the references."""
    out = run(spec, close, high, low)
    for s in range(close.shape[1]):
        c, h, lo = (list(map(float, a[:, s])) for a in (close, high, low))
        for i, p in enumerate(spec.sma):
            check(out.sma.value[:, s, i], out.sma.ready[:, s, i], ref_sma(c, p), f"sma{p}[{s}]")
        for i, p in enumerate(spec.ema):
            check(out.ema.value[:, s, i], out.ema.ready[:, s, i], ref_ema(c, p), f"ema{p}[{s}]")
        for i, p in enumerate(spec.rsi):
            check(out.rsi.value[:, s, i], out.rsi.ready[:, s, i], ref_rsi(c, p), f"rsi{p}[{s}]")
        for i, (f, sl, g) in enumerate(spec.macd):
            line, sig, hist = ref_macd(c, f, sl, g)
            m = out.macd
            check(m.line[:, s, i], m.line_ready[:, s, i], line, f"macd{f, sl, g} line[{s}]")
            check(m.signal[:, s, i], m.ready[:, s, i], sig, f"macd{f, sl, g} signal[{s}]")
            check(m.hist[:, s, i], m.ready[:, s, i], hist, f"macd{f, sl, g} hist[{s}]")
        for i, (p, k) in enumerate(spec.bollinger):
            b = out.bollinger
            for name, ref in zip(("middle", "upper", "lower", "percent_b"), ref_bollinger(c, p, k)):
                check(getattr(b, name)[:, s, i], b.ready[:, s, i], ref, f"bollinger{p, k} {name}[{s}]")
        for i, p in enumerate(spec.atr):
            check(out.atr.value[:, s, i], out.atr.ready[:, s, i], ref_atr(h, lo, c, p), f"atr{p}[{s}]")
    return out


# Short periods (1 and 2 included) so that short series cross every boundary.
SMALL = IndicatorSpec(
    sma=(1, 2, 3, 5, 8),
    ema=(1, 2, 3, 5, 8),
    rsi=(1, 2, 3, 5, 8),
    macd=((1, 2, 1), (2, 5, 3), (3, 8, 4)),
    bollinger=((1, 2.0), (2, 1.0), (5, 2.0), (8, 0.5), (8, 0.0)),
    atr=(1, 2, 5, 8),
)
STANDARD = IndicatorSpec(
    sma=(5, 20), ema=(12,), rsi=(14,), macd=((12, 26, 9),), bollinger=((20, 2.0),), atr=(14,)
)
T_SMALL, S_SMALL = 40, 3


# ---------------------------------------------------------------------------------------
# Agreement with the references.


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_standard_spec_matches_references_on_random_walks(seed):
    cents = random_walk(seed, 120, 2, tie_p=0.2 * seed)
    check_all(STANDARD, *bars_from_cents(cents))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    step=st.sampled_from([1, 3, 50]),
    tie_p=st.sampled_from([0.0, 0.3, 0.8]),
)
def test_small_periods_match_references(seed, step, tie_p):
    """Random walks, small or large moves, with many runs of equal prices."""
    check_all(SMALL, *bars_from_cents(random_walk(seed, T_SMALL, S_SMALL, step, tie_p)))


def test_hand_made_series():
    """Rises, falls, a flat run, a gap, and a return to an earlier level."""
    cents = [10000, 10100, 10200, 10150, 10150, 10150, 10150, 10150, 10150, 10150,
             9900, 9800, 9800, 10500, 10400, 10000, 10000, 10100, 10000, 10100,
             10100, 10100, 10100, 10100, 10100, 10100, 10100, 10100, 10050, 10200,
             10300, 10400, 10500, 10400, 10300, 10200, 10100, 10000, 9900, 9800]  # fmt: skip
    cents = np.stack([cents, cents[::-1], [10000 + 7 * i for i in range(T_SMALL)]], axis=1)
    check_all(SMALL, *bars_from_cents(cents))


def test_hand_computed_values():
    """A few values worked out by hand, independent of the references."""
    close = np.array([[10.0], [11.0], [12.0], [11.0], [13.0]])
    spec = IndicatorSpec(sma=(3,), ema=(3,), rsi=(2,), bollinger=((3, 1.0),), atr=(2,))
    out = run(spec, close, close + 1.0, close - 1.0)
    np.testing.assert_allclose(out.sma.value[:, 0, 0], [0, 0, 11, 34 / 3, 12])
    # EMA(3): seed 11 at bar 2, alpha 0.5: (11+11)/2 = 11, (13+11)/2 = 12
    np.testing.assert_allclose(out.ema.value[:, 0, 0], [0, 0, 11, 11, 12])
    # RSI(2): changes +1 +1 -1 +2; seed gain 1 loss 0 -> 100; then gain .5 loss .5 -> 50;
    # then gain (0.5+2)/2 = 1.25, loss 0.25 -> 100 - 100/6
    np.testing.assert_allclose(out.rsi.value[:, 0, 0], [0, 0, 100, 50, 100 - 100 / 6])
    # Bollinger(3, 1) at bar 2: mean 11, std sqrt(2/3); %B of 12 = (12 - 11 + s)/(2s)
    s = np.sqrt(2 / 3)
    np.testing.assert_allclose(out.bollinger.upper[2, 0, 0], 11 + s)
    np.testing.assert_allclose(out.bollinger.percent_b[2, 0, 0], (1 + s) / (2 * s))
    # ATR(2): TRs 2, 2, 2, 2 (prev close inside the bar), 3 (bar 4: high 14 - prev 11)
    np.testing.assert_allclose(out.atr.value[:, 0, 0], [0, 2, 2, 2, 2.5])


# ---------------------------------------------------------------------------------------
# Edge cases.


def test_flat_series():
    close = np.full((T_SMALL, 2), 100.0)
    out = check_all(SMALL, close, close + 0.5, close - 0.25)
    last = jax.tree.map(lambda a: np.asarray(a[-1]), out)
    np.testing.assert_array_equal(last.rsi.value, 50.0)
    np.testing.assert_array_equal(last.bollinger.percent_b, 0.5)
    np.testing.assert_array_equal(last.bollinger.upper, 100.0)
    np.testing.assert_array_equal(last.bollinger.lower, 100.0)
    np.testing.assert_array_equal(last.sma.value, 100.0)
    np.testing.assert_array_equal(last.macd.line, 0.0)
    np.testing.assert_allclose(last.atr.value, 0.75)


def test_rsi_extremes_on_monotonic_series():
    rising = 100.0 + np.arange(T_SMALL, dtype=float)[:, None] * np.array([0.01, 1.0, 7.5])
    for close, expected in ((rising, 100.0), (rising[::-1].copy(), 0.0)):
        out = run(SMALL, close, close, close)
        ready = np.asarray(out.rsi.ready)
        assert ready[-1].all()
        np.testing.assert_array_equal(np.asarray(out.rsi.value)[ready], expected)


def test_bollinger_middle_is_the_sma():
    spec = IndicatorSpec(sma=(3, 5, 8), bollinger=((3, 1.0), (5, 2.0), (8, 3.0)))
    out = run(spec, *bars_from_cents(random_walk(7, T_SMALL, S_SMALL)))
    np.testing.assert_array_equal(np.asarray(out.bollinger.middle), np.asarray(out.sma.value))
    np.testing.assert_array_equal(np.asarray(out.bollinger.ready), np.asarray(out.sma.ready))


def test_ready_flips_on_the_documented_bar():
    """The bar index each series becomes ready at, written out from the docstrings."""
    spec = IndicatorSpec(sma=(5,), ema=(5,), rsi=(5,), macd=((3, 6, 4),), bollinger=((5, 2.0),), atr=(5,))
    first_ready = {  # bar index (from 0) of the first ready value
        "sma": 4, "ema": 4, "rsi": 5, "macd_line": 5, "macd": 8, "bollinger": 4, "atr": 4,
    }  # fmt: skip
    step = jax.jit(update_and_read, static_argnums=0)
    state = init_indicators(spec, 2)
    close = random_walk(3, 12, 2) / 100.0
    for t in range(12):
        state, ind = step(spec, state, close[t], close[t] + 0.1, close[t] - 0.1)
        flags = {
            "sma": ind.sma.ready, "ema": ind.ema.ready, "rsi": ind.rsi.ready,
            "macd_line": ind.macd.line_ready, "macd": ind.macd.ready,
            "bollinger": ind.bollinger.ready, "atr": ind.atr.ready,
        }  # fmt: skip
        for name, flag in flags.items():
            expected = t >= first_ready[name]
            assert np.asarray(flag).shape == (2, 1)
            assert (np.asarray(flag) == expected).all(), f"{name} ready at bar {t}: expected {expected}"
        values = [ind.sma.value, ind.ema.value, ind.rsi.value, ind.macd.line, ind.macd.signal,
                  ind.macd.hist, ind.bollinger.middle, ind.bollinger.upper, ind.bollinger.lower,
                  ind.bollinger.percent_b, ind.atr.value]  # fmt: skip
        assert all(np.isfinite(np.asarray(v)).all() for v in values)
    assert int(state.bars) == 12


def test_not_ready_values_are_zero():
    close = random_walk(5, 3, 2) / 100.0
    out = run(STANDARD, close, close, close)
    leaves = jax.tree.leaves(out)
    assert all(not np.asarray(x).any() for x in leaves), "every series is still warming up"


def test_symbols_evolve_independently():
    close, high, low = bars_from_cents(random_walk(11, T_SMALL, 3, tie_p=0.3))
    base = run(SMALL, close, high, low)
    changed = close.copy(), high.copy(), low.copy()
    for a in changed:
        a[:, 1] = a[::-1, 1]  # another series for symbol 1 only
    other = run(SMALL, *changed)
    for b, o in zip(jax.tree.leaves(base), jax.tree.leaves(other)):
        b, o = np.asarray(b), np.asarray(o)
        np.testing.assert_array_equal(b[:, [0, 2]], o[:, [0, 2]])  # bit-identical
    alone = run(SMALL, close[:, 2:], high[:, 2:], low[:, 2:])  # symbol 2 in a state of its own
    for b, a in zip(jax.tree.leaves(base), jax.tree.leaves(alone)):
        np.testing.assert_allclose(np.asarray(b)[:, 2:], np.asarray(a), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------
# Compilation, the spec, lookups.


def test_update_compiles_once_per_spec():
    traced = jax.jit(chex.assert_max_traces(update_indicators, n=2), static_argnums=0)
    close = random_walk(0, 30, 4) / 100.0
    for spec in (STANDARD, SMALL):
        state = init_indicators(spec, 4)
        for t in range(30):
            # an equal spec built afresh each tick must hit the same compiled update
            same = IndicatorSpec(**vars(spec))
            state = traced(same, state, close[t], close[t] + 0.1, close[t] - 0.1)
        assert int(state.bars) == 30
    third = IndicatorSpec(sma=(2,))
    with pytest.raises(AssertionError):  # a third spec is a third trace: the counter does count
        traced(third, init_indicators(third, 4), close[0], close[0], close[0])


def test_spec_merge_is_a_sorted_deduplicated_union():
    a = IndicatorSpec(sma=(20, 5), rsi=(14,), macd=((12, 26, 9),), bollinger=((20, 2),))
    b = IndicatorSpec(sma=(5, 50), rsi=(14, 7), macd=((5, 35, 5), (12, 26, 9)), atr=(14,))
    m = a.merge(b)
    assert m == IndicatorSpec(
        sma=(5, 20, 50), rsi=(7, 14), macd=((5, 35, 5), (12, 26, 9)), bollinger=((20, 2.0),), atr=(14,)
    )
    assert m.sma == (5, 20, 50) and m.bollinger == ((20, 2.0),)
    assert m == b.merge(a) and hash(m) == hash(b.merge(a))
    assert m.ema_periods == (5, 12, 26, 35)
    assert m.window == 50


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sma=(0,)), "sma: period must be >= 1"),
        (dict(ema=(-3,)), "ema: period must be >= 1"),
        (dict(rsi=(2.5,)), "rsi: period must be an integer"),
        (dict(atr=(True,)), "atr: period must be an integer"),
        (dict(macd=((26, 12, 9),)), "fast period must be < slow period"),
        (dict(macd=((12, 12, 9),)), "fast period must be < slow period"),
        (dict(macd=((12, 26, 0),)), "signal period must be >= 1"),
        (dict(macd=((12, 26),)), "each entry is (fast, slow, signal)"),
        (dict(bollinger=((20, -1.0),)), "k must be a finite number >= 0"),
        (dict(bollinger=((20, float("nan")),)), "k must be a finite number >= 0"),
        (dict(bollinger=((0, 2.0),)), "bollinger: period must be >= 1"),
    ],
)
def test_spec_validation(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        IndicatorSpec(**kwargs)


def test_lookup_by_period():
    close, high, low = bars_from_cents(random_walk(2, 60, 3))
    spec = STANDARD.merge(IndicatorSpec(rsi=(7,), bollinger=((10, 1.5),)))
    step = jax.jit(update_and_read, static_argnums=0)
    state = init_indicators(spec, 3)
    for t in range(60):
        state, ind = step(spec, state, close[t], high[t], low[t])
    value, ready = ind.rsi_at(14)
    assert value.shape == ready.shape == (3,)
    np.testing.assert_array_equal(value, ind.rsi.value[:, spec.rsi.index(14)])
    np.testing.assert_allclose(value[0], ref_rsi(list(close[:, 0]), 14)[-1], **TOL)
    np.testing.assert_array_equal(ind.sma_at(20)[0], ind.sma.value[:, 1])
    assert ind.ema_at(12)[1].all() and ind.atr_at(14)[1].all()
    m = ind.macd_at(12, 26, 9)
    np.testing.assert_allclose(m.hist, m.line - m.signal, **TOL)
    b = ind.bollinger_at(10, 1.5)
    np.testing.assert_array_equal(b.middle, ind.bollinger.middle[:, 0])
    with pytest.raises(KeyError, match="rsi 15 is not in the IndicatorSpec"):
        ind.rsi_at(15)
    with pytest.raises(KeyError, match="bollinger"):
        ind.bollinger_at(20, 3.0)
    # read_indicators alone gives the same as the fused call
    again = jax.jit(read_indicators, static_argnums=0)(spec, state)
    for a, b_ in zip(jax.tree.leaves(again), jax.tree.leaves(ind)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b_))
