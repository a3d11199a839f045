"""indicators: one bar per symbol per tick -> SMA, EMA, RSI, MACD, Bollinger, ATR.

Incremental and vectorised over symbols and period sets: a tick costs O(1) per smoothed
series (EMA, MACD signal, RSI, ATR) and O(window) per SMA/Bollinger period, with no Python
loop over symbols or ticks. ``spec`` (an ``IndicatorSpec``) is static: jit these with
``static_argnums=0``; equal specs share one compiled update.

Definitions (bars counted from 0; "ready at bar t" = first defined after absorbing bar t):

* SMA(p): mean of the last p closes. Ready at bar p-1.
* EMA(p): alpha = 2/(p+1); the value at bar p-1 is the SMA of the first p closes, then
  ``ema = alpha*close + (1-alpha)*ema``. Ready at bar p-1.
* RSI(p), Wilder: changes ``close_t - close_{t-1}`` from bar 1; the first average
  gain/loss is the mean of the first p gains/losses, then ``avg = (avg*(p-1) + x)/p``.
  ``RSI = 100 - 100/(1 + gain/loss)``: 100 when loss == 0 < gain, 0 when gain == 0 < loss,
  50 when both are 0. Ready at bar p.
* MACD(fast, slow, signal): line = EMA(fast) - EMA(slow), ready at bar slow-1; signal =
  EMA(signal) of the line seeded with the mean of its first ``signal`` values, ready (with
  hist = line - signal) at bar slow+signal-2.
* Bollinger(p, k): middle = SMA(p); population std over the same window; upper/lower =
  middle +- k*std; %B = (close - lower)/(upper - lower), 0.5 where upper == lower.
  Ready at bar p-1.
* ATR(p), Wilder: TR = max(high-low, |high-prev close|, |low-prev close|), high-low on
  bar 0; the first ATR is the mean of the first p TRs, then Wilder's recursion. Ready at
  bar p-1.

Where not ready, every value reads as 0.0 (finite, never NaN).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from components.frame import Frame
from components.indicators import (
    MACD,
    Bollinger,
    Indicators,
    IndicatorSpec,
    IndicatorState,
    Series,
)
from components.money import SCALE


def init_indicators(spec: IndicatorSpec, n_symbols: int) -> IndicatorState:
    """The state before the first bar: nothing absorbed, every series not ready."""

    def zeros(*shape):
        return jnp.zeros((n_symbols, *shape), jnp.float64)

    return IndicatorState(
        bars=jnp.zeros((), jnp.int64),
        window=zeros(spec.window),
        close=zeros(),
        ema=zeros(len(spec.ema_periods)),
        signal=zeros(len(spec.macd)),
        gain=zeros(len(spec.rsi)),
        loss=zeros(len(spec.rsi)),
        atr=zeros(len(spec.atr)),
    )


def _smooth(v: jax.Array, x: jax.Array, t: jax.Array, start, period, alpha) -> jax.Array:
    """One step of a seeded exponential smoother, for K series at once.

    The series' first input arrives at bar ``start``; its first ``period`` inputs are
    summed and the sum divided by ``period`` on the last of them (the seed is their
    mean), then ``v = alpha*x + (1-alpha)*v``. ``v, x`` f64[S, K]; ``t`` i64[] this
    bar's index; ``start, period, alpha`` static numpy [K]. Before ``start`` v is kept.
    """
    n = t - start  # inputs absorbed before this one; negative: no input yet
    summed = v + x
    return jnp.where(
        n < 0,
        v,
        jnp.where(
            n < period - 1,
            summed,
            jnp.where(n == period - 1, summed / period, alpha * x + (1.0 - alpha) * v),
        ),
    )


def _macd_columns(spec: IndicatorSpec) -> tuple[np.ndarray, np.ndarray]:
    """Columns of ``state.ema`` holding each MACD's fast and slow EMA. Static."""
    col = {p: i for i, p in enumerate(spec.ema_periods)}
    fast = np.array([col[f] for f, _, _ in spec.macd], np.int64)
    slow = np.array([col[s] for _, s, _ in spec.macd], np.int64)
    return fast, slow


def update_indicators(
    spec: IndicatorSpec, state: IndicatorState, close: jax.Array, high: jax.Array, low: jax.Array
) -> IndicatorState:
    """Absorb one bar per symbol. ``close, high, low`` f64[S] currency units."""
    close = jnp.asarray(close, jnp.float64)
    high = jnp.asarray(high, jnp.float64)
    low = jnp.asarray(low, jnp.float64)
    t = state.bars
    first = t == 0

    window = state.window.at[:, t % spec.window].set(close)

    ema_p = np.array(spec.ema_periods, np.float64)
    ema = _smooth(state.ema, close[:, None], t, 0, ema_p, 2.0 / (ema_p + 1.0))

    fast, slow = _macd_columns(spec)
    sig_p = np.array([g for _, _, g in spec.macd], np.float64)
    slow_p = np.array([s for _, s, _ in spec.macd], np.int64)
    line = ema[:, fast] - ema[:, slow]  # meaningful from bar slow-1, where the signal starts
    signal = _smooth(state.signal, line, t, slow_p - 1, sig_p, 2.0 / (sig_p + 1.0))

    rsi_p = np.array(spec.rsi, np.float64)
    change = (close - state.close)[:, None]  # meaningful from bar 1, where the RSI starts
    gain = _smooth(state.gain, jnp.maximum(change, 0.0), t, 1, rsi_p, 1.0 / rsi_p)
    loss = _smooth(state.loss, jnp.maximum(-change, 0.0), t, 1, rsi_p, 1.0 / rsi_p)

    atr_p = np.array(spec.atr, np.float64)
    tr = jnp.maximum(high - low, jnp.maximum(jnp.abs(high - state.close), jnp.abs(low - state.close)))
    tr = jnp.where(first, high - low, tr)
    atr = _smooth(state.atr, tr[:, None], t, 0, atr_p, 1.0 / atr_p)

    return IndicatorState(
        bars=t + 1, window=window, close=close, ema=ema, signal=signal, gain=gain, loss=loss, atr=atr
    )


def _window_stats(spec: IndicatorSpec, state: IndicatorState) -> tuple[jax.Array, jax.Array]:
    """Mean and population std of the last p closes for each of spec.window_periods.

    Deviations are taken from the last close, so a flat window has exactly zero spread
    and its mean is exactly that close. Returns (mean, std) f64[S, U]; meaningful only
    once p bars have been seen (before that, unwritten columns are in the window).
    """
    w = spec.window
    periods = np.array(spec.window_periods, np.int64)
    last = (state.bars - 1) % w  # column of the last bar
    age = (last - jnp.arange(w)) % w  # [W] bars since each column was written
    inside = age[None, :] < periods[:, None]  # [U, W]
    dev = state.window - state.close[:, None]  # [S, W]
    p = periods.astype(np.float64)
    mean_dev = jnp.where(inside[None], dev[:, None, :], 0.0).sum(-1) / p  # [S, U]
    sq = jnp.where(inside[None], jnp.square(dev[:, None, :] - mean_dev[:, :, None]), 0.0)
    std = jnp.sqrt(sq.sum(-1) / p)
    return state.close[:, None] + mean_dev, std


def read_indicators(spec: IndicatorSpec, state: IndicatorState) -> Indicators:
    """Every indicator of the spec after the last absorbed bar. Reads only.

    Arrays are ``[S, P]`` per kind, P in spec order; values are 0.0 where not ready.
    """
    s = state.close.shape[0]
    bars = state.bars

    def ready(first_bar) -> jax.Array:  # bool[S, P]: the series is defined from this bar index
        first_bar = np.asarray(first_bar, np.int64).reshape(-1)
        return jnp.broadcast_to(bars > first_bar, (s, first_bar.shape[0]))

    def series(value, ok) -> Series:
        return Series(value=jnp.where(ok, value, 0.0), ready=ok)

    mean, std = _window_stats(spec, state)
    col = {p: i for i, p in enumerate(spec.window_periods)}

    def columns(keys, index) -> np.ndarray:  # static gather indices (int even when empty)
        return np.array([index[k] for k in keys], np.int64)

    sma_ok = ready([p - 1 for p in spec.sma])
    sma = series(mean[:, columns(spec.sma, col)], sma_ok)

    ema_col = {p: i for i, p in enumerate(spec.ema_periods)}
    ema_ok = ready([p - 1 for p in spec.ema])
    ema = series(state.ema[:, columns(spec.ema, ema_col)], ema_ok)

    g, lo = state.gain, state.loss
    no_loss = lo <= 0.0  # the textbook formula exactly, its 0/0 and x/0 cases by name
    rs = g / jnp.where(no_loss, 1.0, lo)
    rsi_value = jnp.where(no_loss, jnp.where(g > 0.0, 100.0, 50.0), 100.0 - 100.0 / (1.0 + rs))
    rsi = series(rsi_value, ready(list(spec.rsi)))

    fast, slow = _macd_columns(spec)
    line_ok = ready([s_ - 1 for _, s_, _ in spec.macd])
    sig_ok = ready([s_ + g_ - 2 for _, s_, g_ in spec.macd])
    line = state.ema[:, fast] - state.ema[:, slow]
    macd = MACD(
        line=jnp.where(line_ok, line, 0.0),
        signal=jnp.where(sig_ok, state.signal, 0.0),
        hist=jnp.where(sig_ok, line - state.signal, 0.0),
        line_ready=line_ok,
        ready=sig_ok,
    )

    bb_cols = columns([p for p, _ in spec.bollinger], col)
    k = np.array([k for _, k in spec.bollinger], np.float64)
    middle = mean[:, bb_cols]
    upper = middle + k * std[:, bb_cols]
    lower = middle - k * std[:, bb_cols]
    width = upper - lower
    flat = width <= 0.0
    pct_b = jnp.where(flat, 0.5, (state.close[:, None] - lower) / jnp.where(flat, 1.0, width))
    bb_ok = ready([p - 1 for p, _ in spec.bollinger])
    bollinger = Bollinger(
        middle=jnp.where(bb_ok, middle, 0.0),
        upper=jnp.where(bb_ok, upper, 0.0),
        lower=jnp.where(bb_ok, lower, 0.0),
        percent_b=jnp.where(bb_ok, pct_b, 0.0),
        ready=bb_ok,
    )

    atr = series(state.atr, ready([p - 1 for p in spec.atr]))
    return Indicators(sma=sma, ema=ema, rsi=rsi, macd=macd, bollinger=bollinger, atr=atr, spec=spec)


def update_and_read(
    spec: IndicatorSpec, state: IndicatorState, close: jax.Array, high: jax.Array, low: jax.Array
) -> tuple[IndicatorState, Indicators]:
    """``update_indicators`` then ``read_indicators``: the indicators' part of a tick."""
    state = update_indicators(spec, state, close, high, low)
    return state, read_indicators(spec, state)


def update_market_indicators(static, params, state, frame: Frame, key: jax.Array):
    """update: the tick's bar per symbol (close = last trade, high, low) -> indicators.

    A write-phase stage of the tick schedule; ``static.indicators`` is the merged spec of
    every strategy kind. Prices go from fixed-point units to currency.
    """
    del params, key
    m = state.market
    close, high, low = (x.astype(jnp.float64) / SCALE for x in (m.last, m.high, m.low))
    ind = update_indicators(static.indicators, state.indicators, close, high, low)
    return state.replace(indicators=ind), frame


def replay_indicators(bollinger: tuple[int, float], rsi: int, macd: tuple[int, int, int],
                      bars: np.ndarray) -> dict[str, np.ndarray]:
    """One Bollinger band, RSI and MACD over recorded tick bars, in one jitted scan
    (compiled once per spec and shape).

    ``bars`` i64[T, 3, S]: last, high and low of each tick in units. Returns host arrays
    f64[T, S] in currency (RSI in index points), NaN where an indicator is not ready:
    ``bb_middle``, ``bb_upper``, ``bb_lower``, ``rsi``, ``macd``, ``macd_signal``.
    """
    (bp, bk), rp, mp = bollinger, rsi, macd
    spec = IndicatorSpec(rsi=(rp,), macd=(mp,), bollinger=((bp, bk),))
    out = _replay(spec, jnp.asarray(np.asarray(bars) / SCALE))
    return {k: np.asarray(v) for k, v in out.items()}


@functools.partial(jax.jit, static_argnums=0)
def _replay(spec: IndicatorSpec, bars: jax.Array) -> dict[str, jax.Array]:
    (bp, bk), = spec.bollinger
    rp, = spec.rsi
    mp, = spec.macd

    def step(state, bar):
        state, ind = update_and_read(spec, state, bar[0], bar[1], bar[2])
        bb, r, m = ind.bollinger_at(bp, bk), ind.rsi_at(rp), ind.macd_at(*mp)
        nan = jnp.nan
        return state, {
            "bb_middle": jnp.where(bb.ready, bb.middle, nan),
            "bb_upper": jnp.where(bb.ready, bb.upper, nan),
            "bb_lower": jnp.where(bb.ready, bb.lower, nan),
            "rsi": jnp.where(r[1], r[0], nan),
            "macd": jnp.where(m.line_ready, m.line, nan),
            "macd_signal": jnp.where(m.ready, m.signal, nan),
        }

    _, out = jax.lax.scan(step, init_indicators(spec, bars.shape[2]), bars)
    return out
