"""Run analysis from a run directory's CSV files: stylized facts of returns, the response
of prices to news events, and their charts. Pure NumPy and matplotlib (no pandas, no
scipy); every function takes plain arrays and dicts and returns plain data.

Inputs (written by a run, see the README):

- ``prices.csv``: one row per (tick, symbol): ``tick,symbol,sector,last,bid,ask,mid,fair,volume,tick_size``
  (currency as floats, 0 where a side of the book is empty; ``fair`` is the fair value in
  force after that tick; ``tick_size`` may be absent in older runs, then the spread in
  ticks is n/a);
- ``events.csv``: one row per news event: ``tick,kind,target,size,symbols,fair_before,fair_after``
  (``symbols`` = affected symbol names joined by ``;``).

Price series. The price of a symbol at a tick is its ``mid`` when both sides of the book
exist, else its ``last`` trade price; a tick with neither carries the previous price
forward. Returns are log returns of that series, tick to tick.

Stylized facts. Each statistic is computed per symbol; a fact reports the median over the
symbols that have a value and passes when that median meets the threshold:

=====================  ==================================================================
heavy tails            excess kurtosis of returns summed over non-overlapping blocks of
                       1, 5 and 20 ticks; passes if the kurtosis at horizon 1 is
                       > ``KURTOSIS_MIN`` (1.0; a normal distribution has 0).
volatility clustering  ACF of ``|r|`` at lags 1-50; passes if the mean ACF over lags
                       1-10 is > ``VOL_CLUSTER_MIN`` (0.05) and above the 95% band
                       ``1.96 / sqrt(T)`` of an i.i.d. series of the same length.
no autocorrelation     ACF of ``r`` at lags 1-50; passes if ``|ACF(1)|`` < ``max(0.1, band)``
                       (``AUTOCORR_LAG1_MAX``) and the mean ``|ACF|`` over lags 2-10 is
                       < ``max(0.05, band)`` (``AUTOCORR_MEAN_MAX``). At the tick level
                       the bid-ask bounce of trade prices, and quotes pulled back toward
                       fair value, make ACF(1) negative; a market can fail on lag 1 alone
                       for that reason (the statistics say which lag failed).
mean reversion         AR(1) fit by least squares of ``x = log(price / fair)``:
                       ``x[t+1] = a + b x[t] + e``; half-life ``-ln 2 / ln b`` ticks.
                       Passes if ``0 < b < 1`` and the Dickey-Fuller statistic
                       ``(b - 1) / se(b)`` is < ``DF_CRITICAL`` (-2.86, the 5% critical
                       value with a constant), so that a random walk, whose fitted
                       ``b`` is slightly below 1 by bias, does not pass. n/a without a
                       fair value.
=====================  ==================================================================

The same facts by time scale (:func:`multiscale_facts`, ``SCALE_FACTS`` at ``SCALES`` =
1, 10, 100 ticks): excess kurtosis, also without the ``TRIM_LARGEST`` largest ``|r|``; the
Hill tail index of the top ``HILL_TAIL`` of ``|r|``; the ACF of ``|r|`` at lags 1-10
against the band; ``|ACF(1)|`` of ``r``; corr(``|r|``, volume). Each constant's docstring
gives its source (Cont 2001, "Empirical properties of asset returns: stylized facts and
statistical issues"; Hill 1975; Gopikrishnan et al. 1999). :func:`market_values` reports
the half-life, the spread in ticks and the fraction of ticks where fair value moves.

A statistic needs at least ``MIN_SAMPLES`` (30) values (returns, or blocks at a horizon);
a shorter or constant series gives ``None`` for that symbol, and a fact with no symbol
left is n/a (``passed`` is ``None``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from qtg.core.files import save_figure

PRICE_FIELDS = ("last", "bid", "ask", "mid", "fair", "volume", "tick_size")
PRICES_REQUIRED = ("tick", "symbol", "last")
EVENTS_REQUIRED = ("tick", "kind", "target")

MIN_SAMPLES = 30
"""Fewest values (returns, blocks, AR(1) pairs) a statistic is computed from."""
Z95 = 1.96
"""Two-sided 95% normal quantile: the ACF band of an i.i.d. series is Z95 / sqrt(T)."""
KURTOSIS_HORIZONS = (1, 5, 20)
"""Aggregation horizons (ticks) of the heavy-tails fact."""
KURTOSIS_MIN = 1.0
"""Heavy tails: excess kurtosis at horizon 1 must exceed this."""
ACF_LAGS = 50
"""Lags 1..ACF_LAGS of the autocorrelation functions."""
SHORT_LAGS = 10
"""Lags 1..SHORT_LAGS summarise an ACF."""
VOL_CLUSTER_MIN = 0.05
"""Volatility clustering: mean ACF of |r| over lags 1-10 must exceed this and the band."""
AUTOCORR_LAG1_MAX = 0.1
"""No autocorrelation: |ACF(1)| of r must be below max(this, band)."""
AUTOCORR_MEAN_MAX = 0.05
"""No autocorrelation: mean |ACF| of r over lags 2-10 must be below max(this, band)."""
DF_CRITICAL = -2.86
"""Mean reversion: the Dickey-Fuller t statistic of b must be below this (5%, with constant)."""


# --------------------------------------------------------------------------- loading


def _header(reader: csv.DictReader, required, name: str) -> None:
    """ValueError naming the required columns the CSV lacks."""
    header = reader.fieldnames or []
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{name} header lacks column(s) {', '.join(missing)} (has: {','.join(header) or 'nothing'})")


def load_prices(run_dir: str | Path) -> dict[str, Any]:
    """Read ``RUN_DIR/prices.csv`` into arrays: ``ticks`` i64[T] (sorted), ``symbols`` and
    ``sectors`` (lists, first-appearance order), and ``last bid ask mid fair volume
    tick_size`` f64[T, S] (0 where a row or column is missing). Raises FileNotFoundError
    when the file is missing and ValueError (naming the line) when it is malformed."""
    path = Path(run_dir) / "prices.csv"
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        _header(reader, PRICES_REQUIRED, "prices.csv")
        symbols: dict[str, int] = {}
        sectors: list[str] = []
        rows: list[tuple[int, int, list[float]]] = []
        for line, row in enumerate(reader, start=2):
            try:
                tick = int(row["tick"])
                name = row["symbol"]
                if not name:
                    raise ValueError("empty symbol")
                values = [float(row[c]) if row.get(c) not in (None, "") else 0.0 for c in PRICE_FIELDS]
            except (TypeError, ValueError) as e:
                raise ValueError(f"line {line}: {e}") from None
            if name not in symbols:
                symbols[name] = len(symbols)
                sectors.append(row.get("sector") or "")
            rows.append((tick, symbols[name], values))
    if not rows:
        raise ValueError("no data rows")
    ticks = np.unique(np.array([r[0] for r in rows], np.int64))
    t_index = np.searchsorted(ticks, [r[0] for r in rows])
    s_index = np.array([r[1] for r in rows])
    if len(set(zip(t_index.tolist(), s_index.tolist()))) != len(rows):
        raise ValueError("more than one row for the same (tick, symbol)")
    values = np.array([r[2] for r in rows], np.float64)
    if not np.isfinite(values).all():
        raise ValueError("a price, fair value or volume is not finite")
    out: dict[str, Any] = {"ticks": ticks, "symbols": list(symbols), "sectors": sectors}
    for j, c in enumerate(PRICE_FIELDS):
        a = np.zeros((len(ticks), len(symbols)), np.float64)
        a[t_index, s_index] = values[:, j]
        out[c] = a
    return out


def load_events(run_dir: str | Path) -> list[dict[str, Any]]:
    """Read ``RUN_DIR/events.csv`` into dicts (``tick`` int, ``kind``, ``target``, ``size``
    float, ``symbols`` list, ``fair_before``/``fair_after`` float or None), in file order;
    an empty list when the file is missing or has no rows."""
    path = Path(run_dir) / "events.csv"
    if not path.exists() or path.stat().st_size == 0:
        return []
    events = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        _header(reader, EVENTS_REQUIRED, "events.csv")

        def num(v):
            return None if v in (None, "") else float(v)

        for line, row in enumerate(reader, start=2):
            try:
                events.append({
                    "tick": int(row["tick"]),
                    "kind": row["kind"],
                    "target": row["target"],
                    "size": num(row.get("size")) or 0.0,
                    "symbols": [s for s in (row.get("symbols") or "").split(";") if s],
                    "fair_before": num(row.get("fair_before")),
                    "fair_after": num(row.get("fair_after")),
                })
            except (TypeError, ValueError) as e:
                raise ValueError(f"events.csv line {line}: {e}") from None
    return events


# --------------------------------------------------------------------------- series


def _ffill(a: np.ndarray) -> np.ndarray:
    """f64[T, S]: carry the last finite value of each column forward (leading NaNs stay NaN)."""
    idx = np.where(np.isfinite(a), np.arange(len(a))[:, None], 0)
    np.maximum.accumulate(idx, axis=0, out=idx)
    return np.take_along_axis(a, idx, axis=0)


def indexed(price: np.ndarray, fair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``price`` and ``fair`` f64[T, S] as indices, 100 at each column's first finite price
    (NaN for a column that never has one)."""
    first = np.array([col[np.isfinite(col)][0] if np.isfinite(col).any() else np.nan for col in price.T])
    return 100 * price / first, 100 * fair / first


def price_series(prices: dict[str, Any]) -> np.ndarray:
    """f64[T, S]: mid where both sides exist, else last, carried forward; NaN before the
    first price of a symbol."""
    both = (prices["bid"] > 0) & (prices["ask"] > 0) & (prices["mid"] > 0)
    p = np.where(both, prices["mid"], np.where(prices["last"] > 0, prices["last"], np.nan))
    return _ffill(p)


def log_returns(prices: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per symbol, the log returns of ``price_series`` tick to tick (finite values only)."""
    p = price_series(prices)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.diff(np.log(p), axis=0)
    return {s: r[np.isfinite(r[:, j]), j] for j, s in enumerate(prices["symbols"])}


def log_mispricing(prices: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per symbol, ``log(price_t / fair_{t-1})`` per tick (NaN where either is missing, and
    at the first tick); an empty dict when no fair value is recorded. The fair value is the
    previous tick's: the one the traders of tick ``t`` saw when they set its prices (a row of
    prices.csv holds the fair value after that tick's news, which prices meet a tick later)."""
    recorded = prices["fair"]
    if not (recorded > 0).any():
        return {}
    fair = np.vstack([np.zeros((1, recorded.shape[1])), recorded[:-1]])
    p = price_series(prices)
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.where(fair > 0, np.log(p / np.where(fair > 0, fair, 1.0)), np.nan)
    return {s: x[:, j] for j, s in enumerate(prices["symbols"]) if (fair[:, j] > 0).any()}


# --------------------------------------------------------------------------- statistics


def excess_kurtosis(x: np.ndarray) -> float | None:
    """Population excess kurtosis m4 / m2^2 - 3; None for fewer than MIN_SAMPLES values or
    a constant series."""
    x = np.asarray(x, np.float64)
    if len(x) < MIN_SAMPLES:
        return None
    d = x - x.mean()
    m2 = float(np.mean(d * d))
    if not m2 > 1e-300 or np.ptp(x) == 0:
        return None
    return float(np.mean(d**4) / (m2 * m2) - 3.0)


def aggregate(r: np.ndarray, horizon: int) -> np.ndarray:
    """Sums of ``r`` over non-overlapping blocks of ``horizon`` values (a remainder dropped)."""
    n = len(r) // horizon
    return np.asarray(r[: n * horizon], np.float64).reshape(n, horizon).sum(axis=1)


def _centred(x: np.ndarray) -> tuple[np.ndarray, float] | None:
    """``x - mean(x)`` and its sum of squares; None for fewer than MIN_SAMPLES values or a
    constant series (what :func:`acf` and :func:`robust_band_1` cannot be computed from)."""
    x = np.asarray(x, np.float64)
    if len(x) < MIN_SAMPLES or np.ptp(x) == 0:
        return None
    d = x - x.mean()
    denom = float(d @ d)
    return (d, denom) if denom > 1e-300 else None


def acf(x: np.ndarray, max_lag: int = ACF_LAGS) -> np.ndarray | None:
    """Sample autocorrelation at lags 1..min(max_lag, len-1):
    ``sum_t (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2``. None for fewer than MIN_SAMPLES
    values or a constant series."""
    centred = _centred(x)
    if centred is None:
        return None
    d, denom = centred
    n = len(d)
    return np.array([d[: n - k] @ d[k:] for k in range(1, min(max_lag, n - 1) + 1)]) / denom


def band(n: int) -> float:
    """The 95% band of the ACF of an i.i.d. series of length n."""
    return Z95 / math.sqrt(n) if n > 0 else math.inf


def robust_band_1(x: np.ndarray) -> float | None:
    """The 95% band of the lag-1 autocorrelation of ``x`` under the null of no
    autocorrelation, heteroskedasticity-consistent (Lo and MacKinlay 1989; Romano and
    Thombs 1996): ``Z95 sqrt(sum_t d_t^2 d_{t-1}^2) / sum_t d_t^2`` with ``d = x - mean``.
    With volatility clustering the i.i.d. band ``Z95 / sqrt(n)`` is too narrow: on GARCH
    and regime-switching series with no autocorrelation at all it rejects 13-28% at 10
    ticks, where this band rejects 2-6% (docs/realism.md). None where :func:`acf` is."""
    centred = _centred(x)
    if centred is None:
        return None
    d, denom = centred
    return Z95 * math.sqrt(float(np.sum((d[1:] * d[:-1]) ** 2))) / denom


def ar1_fit(x: np.ndarray) -> dict[str, float | None] | None:
    """Least-squares AR(1) ``x[t+1] = a + b x[t] + e`` over consecutive finite pairs:
    ``a, b``, the standard error of b, the Dickey-Fuller statistic ``(b - 1) / se``, the
    half-life ``-ln 2 / ln b`` (None unless 0 < b < 1) and the number of pairs. None for
    fewer than MIN_SAMPLES pairs or a constant series."""
    x = np.asarray(x, np.float64)
    ok = np.isfinite(x[:-1]) & np.isfinite(x[1:])
    x0, x1 = x[:-1][ok], x[1:][ok]
    n = len(x0)
    if n < MIN_SAMPLES:
        return None
    d0 = x0 - x0.mean()
    sxx = float(d0 @ d0)
    if not sxx > 1e-300 or np.ptp(x0) == 0:
        return None
    b = float(d0 @ (x1 - x1.mean())) / sxx
    a = float(x1.mean() - b * x0.mean())
    e = x1 - a - b * x0
    s2 = float(e @ e) / max(n - 2, 1)
    se = math.sqrt(s2 / sxx)
    t = (b - 1.0) / max(se, 1e-15)  # an exact fit gives a huge (finite) statistic
    half = -math.log(2.0) / math.log(b) if 0 < b < 1 else None
    return {"a": a, "b": b, "se_b": se, "df_stat": t, "half_life": half, "n": n}


# --------------------------------------------------------------------------- facts by time scale

SCALES = (1, 10, 100)
"""Aggregation scales (ticks) of the multi-scale facts: returns summed over non-overlapping
blocks of this many ticks (Cont 2001, section 3: the facts are stated per time scale, and
heavy tails fade as the scale grows, "aggregational Gaussianity")."""
TRIM_LARGEST = 3
"""Trimmed kurtosis: the excess kurtosis with this many largest |r| removed, so that a
handful of news jumps cannot make the tails heavy on their own."""
HILL_TAIL = 0.05
"""Hill estimator: the top fraction of |r| used as the tail (k = floor(HILL_TAIL * n))."""
HILL_MIN_K = 5
"""Hill estimator: fewest tail values k (n >= 100 returns at HILL_TAIL = 5%)."""
HILL_ALPHA_RANGE = (2.0, 5.0)
"""Tail index of |r|: real markets give about 3 (the "inverse cubic law", Gopikrishnan et
al. 1999; Cont 2001 fact 2: between 2 and 5, so a finite variance but heavy tails)."""
ACF1_MAX = 0.05
"""Absence of linear autocorrelation (Cont 2001 fact 1): |ACF(1)| of r below
max(this, band); the band keeps a scale with few returns from failing on noise alone."""
VOLUME_CORR_MIN = 0.0
"""Volume/volatility correlation (Cont 2001 fact 9): corr(|r|, volume) above this."""
CLUSTER_Q_CRITICAL = 18.307
"""Volatility clustering: the McLeod-Li (1983) test, a Ljung-Box (1978) Q of ``|r|`` over
lags 1-10, must exceed this, the 95% quantile of chi-squared with 10 degrees of freedom
(``scipy.stats.chi2.ppf(0.95, 10)``), with a positive mean ACF. A joint test of the ten
lags: it keeps its power at 100 ticks, where 50 blocks put the band at 0.28 and even a
strongly clustered series rarely has all ten lags above it."""


def ljung_box(c: np.ndarray, n: int) -> float:
    """Ljung-Box Q = n (n + 2) sum_k c_k^2 / (n - k) of the autocorrelations ``c`` at lags
    1..len(c) of a series of ``n`` values; chi-squared with len(c) degrees of freedom under
    independence."""
    lags = np.arange(1, len(c) + 1)
    return float(n * (n + 2) * np.sum(np.asarray(c, np.float64) ** 2 / (n - lags)))


def winsorized_abs(x: np.ndarray, top: int = TRIM_LARGEST) -> np.ndarray:
    """``|x|`` with its ``top`` largest values lowered to the next largest (the series keeps
    its length and order, so its ACF is still defined lag by lag); ``|x|`` unchanged when
    it has ``top`` values or fewer."""
    a = np.abs(np.asarray(x, np.float64))
    if len(a) <= top:
        return a
    return np.minimum(a, np.sort(a)[-top - 1])


def clustering_q(c_abs: np.ndarray | None, n: int) -> float | None:
    """The clustering statistic: the Ljung-Box Q of the ACF of ``|r|`` at lags 1-10,
    negated when their mean is not positive (a negative dependence is not clustering);
    None without all ten lags."""
    if c_abs is None or len(c_abs) < SHORT_LAGS:
        return None
    q = ljung_box(c_abs[:SHORT_LAGS], n)
    return q if float(np.mean(c_abs[:SHORT_LAGS])) > 0 else -q


def trimmed_kurtosis(x: np.ndarray, drop: int = TRIM_LARGEST) -> float | None:
    """Excess kurtosis (:func:`excess_kurtosis`) of ``x`` after removing its ``drop``
    largest values of ``|x|`` (ties by position); None when fewer than MIN_SAMPLES values
    remain or the rest is constant."""
    x = np.asarray(x, np.float64)
    if len(x) - drop < MIN_SAMPLES:
        return None
    keep = np.sort(np.argsort(-np.abs(x), kind="stable")[drop:])
    return excess_kurtosis(x[keep])


def hill_alpha(x: np.ndarray, tail: float = HILL_TAIL, min_k: int = HILL_MIN_K) -> float | None:
    """Hill (1975) estimate of the tail index of ``|x|``: with ``|x|`` sorted descending
    ``X(1) >= X(2) >= ...`` and ``k = floor(tail * n)``,
    ``alpha = 1 / ((1/k) sum_{i=1..k} ln X(i) - ln X(k+1))``. A Pareto sample with
    ``P(X > u) = u^-alpha`` gives ``alpha`` (relative error about ``1 / sqrt(k)``). None for
    fewer than MIN_SAMPLES values, ``k < min_k``, or ``X(k+1) = 0`` (more than 1 - tail of
    the returns are zero) or a flat tail."""
    a = np.abs(np.asarray(x, np.float64))
    n = len(a)
    k = math.floor(tail * n)
    if n < MIN_SAMPLES or k < min_k:
        return None
    top = -np.sort(-a)[: k + 1]
    if not top[k] > 0:
        return None
    h = float(np.mean(np.log(top[:k])) - math.log(top[k]))
    return 1.0 / h if h > 0 else None


def abs_volume_corr(r: np.ndarray, volume: np.ndarray) -> float | None:
    """Pearson correlation of ``|r|`` with ``volume`` (the same periods, shares); None for
    fewer than MIN_SAMPLES values or either series constant."""
    a = np.abs(np.asarray(r, np.float64))
    v = np.asarray(volume, np.float64)
    if len(a) < MIN_SAMPLES or np.ptp(a) == 0 or np.ptp(v) == 0:
        return None
    return float(np.corrcoef(a, v)[0, 1])


def spread_ticks(bid: np.ndarray, ask: np.ndarray, tick_size: float) -> float | None:
    """Median quoted spread ``(ask - bid) / tick_size`` over the ticks where both sides of
    the book exist (bid, ask > 0); None when there are none or the tick size is unknown."""
    bid, ask = np.asarray(bid, np.float64), np.asarray(ask, np.float64)
    both = (bid > 0) & (ask > 0)
    if not both.any() or not tick_size > 0:
        return None
    return float(np.median((ask[both] - bid[both]) / tick_size))


def fair_move_fraction(fair: np.ndarray) -> float | None:
    """Fraction of consecutive tick pairs (both fair values > 0) where the fair value
    changes; None for fewer than 2 such pairs."""
    f = np.asarray(fair, np.float64)
    ok = (f[:-1] > 0) & (f[1:] > 0)
    if ok.sum() < 2:
        return None
    return float(np.mean(f[1:][ok] != f[:-1][ok]))


def returns_and_volume(prices: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per symbol, its log returns (as :func:`log_returns`) and the volume traded in the
    tick each return ends at (shares), aligned."""
    p = price_series(prices)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.diff(np.log(p), axis=0)
    vol = prices["volume"][1:]
    return {s: (r[np.isfinite(r[:, j]), j], vol[np.isfinite(r[:, j]), j]) for j, s in enumerate(prices["symbols"])}


def scale_statistics(r: np.ndarray, volume: np.ndarray, scale: int) -> dict[str, Any]:
    """The statistics of one symbol at one scale: returns and volume summed over
    non-overlapping blocks of ``scale`` ticks (:func:`aggregate`), then ``n`` (blocks),
    ``kurtosis``, ``kurtosis_trimmed``, ``hill_alpha``, ``acf_abs_1_10`` (ACF of |r| at
    lags 1-10), ``lags_above_band`` (how many of them exceed the band), ``clustering_q``
    (:func:`clustering_q`), ``clustering_q_winsorized`` (the same of
    :func:`winsorized_abs`: a few news jumps cannot hide the clustering), ``band``,
    ``acf_1`` (of r), ``acf_1_band`` (:func:`robust_band_1`) and ``volume_corr``; None where a statistic cannot be computed."""
    x, v = aggregate(r, scale), aggregate(volume, scale)
    c_abs, c = acf(np.abs(x), SHORT_LAGS), acf(x, 1)
    c_win = acf(winsorized_abs(x), SHORT_LAGS)
    b = band(len(x))
    full = c_abs is not None and len(c_abs) == SHORT_LAGS
    return {
        "n": len(x), "kurtosis": excess_kurtosis(x), "kurtosis_trimmed": trimmed_kurtosis(x),
        "hill_alpha": hill_alpha(x), "acf_abs_1_10": c_abs.tolist() if full else None,
        "lags_above_band": int((c_abs > b).sum()) if full else None,
        "clustering_q": clustering_q(c_abs, len(x)),
        "clustering_q_winsorized": clustering_q(c_win, len(x)), "band": b if len(x) else None,
        "acf_1": None if c is None else float(c[0]), "acf_1_band": robust_band_1(x),
        "volume_corr": abs_volume_corr(x, v),
    }


def _in_hill_range(a: float) -> bool:
    return HILL_ALPHA_RANGE[0] <= a <= HILL_ALPHA_RANGE[1]


SCALE_FACTS = (
    # name, statistic key, threshold text, test(value, statistics of the scale)
    ("heavy tails", "kurtosis", f"excess kurtosis > {KURTOSIS_MIN:g}", lambda v, st: v > KURTOSIS_MIN),
    ("heavy tails, top 3 removed", "kurtosis_trimmed", f"excess kurtosis > {KURTOSIS_MIN:g}",
     lambda v, st: v > KURTOSIS_MIN),
    ("tail index", "hill_alpha",
     f"Hill alpha of top {HILL_TAIL:.0%} |r| in [{HILL_ALPHA_RANGE[0]:g}, {HILL_ALPHA_RANGE[1]:g}]",
     lambda v, st: _in_hill_range(v)),
    ("volatility clustering", "clustering_q",
     f"McLeod-Li Q of |r|, lags 1-{SHORT_LAGS} > {CLUSTER_Q_CRITICAL:g} (5%), mean ACF > 0",
     lambda v, st: v > CLUSTER_Q_CRITICAL),
    ("volatility clustering, top 3 capped", "clustering_q_winsorized",
     f"the same with the {TRIM_LARGEST} largest |r| lowered to the next", lambda v, st: v > CLUSTER_Q_CRITICAL),
    ("no autocorrelation", "acf_1", f"|ACF(1)| of r < max({ACF1_MAX:g}, robust band)",
     lambda v, st: abs(v) < max(ACF1_MAX, st["acf_1_band"] if st["acf_1_band"] is not None else st["band"])),
    ("volume-volatility", "volume_corr", f"corr(|r|, volume) > {VOLUME_CORR_MIN:g}",
     lambda v, st: v > VOLUME_CORR_MIN),
)
"""The facts measured at every scale of SCALES (Cont 2001 facts 1, 2, 5 and 9)."""


def multiscale_facts(prices: dict[str, Any], scales: tuple[int, ...] = SCALES) -> dict[str, Any]:
    """Each fact of SCALE_FACTS at each scale: per symbol (:func:`scale_statistics`), then
    the median over symbols tested against the threshold (the bands are the median bands).
    A scale where no symbol has a value is n/a (``passed`` None). Returns ``scales``,
    ``facts`` (``name, threshold, by_scale: {"1": {value, passed}, ...}``), ``per_symbol``
    (symbol -> scale -> statistics) and the counts ``passed, failed, not_applicable``."""
    rv = returns_and_volume(prices)
    per = {s: {str(k): scale_statistics(r, v, k) for k in scales} for s, (r, v) in rv.items()}
    facts = []
    for name, key, threshold, test in SCALE_FACTS:
        by_scale = {}
        for k in scales:
            value = _median(per[s][str(k)][key] for s in per)
            st = {b: _median(per[s][str(k)][b] for s in per) for b in ("band", "acf_1_band")}
            by_scale[str(k)] = {"value": value, "passed": None if value is None else bool(test(value, st))}
        facts.append({"name": name, "statistic": key, "threshold": threshold, "by_scale": by_scale})
    verdicts = [c["passed"] for f in facts for c in f["by_scale"].values()]
    return _clean({
        "scales": list(scales), "facts": facts, "per_symbol": per,
        "passed": sum(v is True for v in verdicts), "failed": sum(v is False for v in verdicts),
        "not_applicable": sum(v is None for v in verdicts),
    })


def market_values(prices: dict[str, Any]) -> dict[str, Any]:
    """Reported values, no threshold (medians over symbols): the mispricing half-life in
    ticks (AR(1) of log(price / fair), :func:`ar1_fit`), the quoted spread in ticks
    (:func:`spread_ticks`, None without a ``tick_size`` column) and the fraction of ticks
    where fair value moves (:func:`fair_move_fraction`)."""
    mis = log_mispricing(prices)
    fits = [ar1_fit(x) for x in mis.values()]
    ticks = prices.get("tick_size")
    spreads = [spread_ticks(prices["bid"][:, j], prices["ask"][:, j],
                            float(ticks[:, j].max()) if ticks is not None else 0.0)
               for j in range(len(prices["symbols"]))]
    moves = [fair_move_fraction(prices["fair"][:, j]) for j in range(len(prices["symbols"]))]
    return _clean({
        "half_life_ticks": _median(f["half_life"] for f in fits if f is not None),
        "spread_ticks": _median(spreads),
        "fair_move_fraction": _median(moves),
    })


def text_table(rows: list[tuple[str, ...]], left: set[int] | None = None) -> str:
    """Rows of strings (the first the header) as aligned columns with a rule under the
    header: the columns in ``left`` left-justified (default: every column), the others
    right-justified, trailing spaces trimmed."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    left = set(range(len(widths))) if left is None else left
    lines = ["  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_scale_table(ms: dict[str, Any]) -> str:
    """Aligned text table: one row per fact, a column per scale (value and PASS/FAIL/n/a),
    the threshold last."""
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}
    spec = {"clustering_q": ".1f", "clustering_q_winsorized": ".1f", "hill_alpha": ".2f", "kurtosis": ".2f", "kurtosis_trimmed": ".2f"}
    head = ("fact", *(f"{k} tick" + ("s" if k > 1 else "") for k in ms["scales"]), "threshold")
    rows = [head]
    for f in ms["facts"]:
        cells = []
        for k in ms["scales"]:
            c = f["by_scale"][str(k)]
            v = c["value"]
            text = _fmt(v, spec.get(f["statistic"], ".3f"))
            cells.append(f"{text} {verdict[c['passed']]}")
        rows.append((f["name"], *cells, f["threshold"]))
    return text_table(rows, left={0, len(head) - 1})


def _median(values) -> float | None:
    v = [x for x in values if x is not None and math.isfinite(x)]
    return float(np.median(v)) if v else None


def _clean(v):
    """JSON-safe: floats rounded, non-finite -> None, numpy scalars -> Python."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return round(float(v), 6) if math.isfinite(v) else None
    return v


def _fact(name, statistic, value, statistics, threshold, passed, per_symbol, note=None):
    return _clean({
        "name": name, "statistic": statistic, "value": value, "statistics": statistics,
        "threshold": threshold, "passed": passed, "per_symbol": per_symbol, "note": note,
    })


def heavy_tails(returns: dict[str, np.ndarray]) -> dict[str, Any]:
    """Excess kurtosis at horizons KURTOSIS_HORIZONS; passes if the horizon-1 median > KURTOSIS_MIN."""
    per = {}
    for s, r in returns.items():
        k = {f"kurtosis_h{h}": excess_kurtosis(aggregate(r, h)) for h in KURTOSIS_HORIZONS}
        k1 = k["kurtosis_h1"]
        per[s] = {**k, "passed": None if k1 is None else k1 > KURTOSIS_MIN}
    stats = {f"kurtosis_h{h}": _median(v[f"kurtosis_h{h}"] for v in per.values()) for h in KURTOSIS_HORIZONS}
    value = stats["kurtosis_h1"]
    return _fact(
        "heavy tails", "excess kurtosis of returns, horizon 1", value, stats,
        f"> {KURTOSIS_MIN:g} at h=1", None if value is None else value > KURTOSIS_MIN, per,
        None if value is not None else "too few returns or constant prices",
    )


def volatility_clustering(returns: dict[str, np.ndarray]) -> dict[str, Any]:
    """ACF of |r| at lags 1..ACF_LAGS; passes if the median mean ACF(1-10) exceeds
    max(VOL_CLUSTER_MIN, band)."""
    per, curves = {}, []
    for s, r in returns.items():
        c = acf(np.abs(r))
        if c is None or len(c) < SHORT_LAGS:
            per[s] = {"mean_acf_1_10": None, "acf_1": None, "band": None, "passed": None}
            continue
        curves.append(c)
        m, b = float(c[:SHORT_LAGS].mean()), band(len(r))
        per[s] = {"mean_acf_1_10": m, "acf_1": float(c[0]), "acf_50": float(c[-1]), "band": b,
                  "passed": m > max(VOL_CLUSTER_MIN, b)}
    value = _median(v["mean_acf_1_10"] for v in per.values())
    b = _median(v["band"] for v in per.values())
    limit = None if b is None else max(VOL_CLUSTER_MIN, b)
    stats = {"mean_acf_1_10": value, "band": b, "acf": _median_curve(curves)}
    return _fact(
        "volatility clustering", "mean ACF of |r|, lags 1-10", value, stats,
        f"> max({VOL_CLUSTER_MIN:g}, band)" + ("" if limit is None else f" = {limit:.4f}"),
        None if value is None else value > limit, per,
        None if value is not None else "too few returns or constant prices",
    )


def no_autocorrelation(returns: dict[str, np.ndarray]) -> dict[str, Any]:
    """ACF of r at lags 1..ACF_LAGS; passes if the medians of |ACF(1)| and of the mean
    |ACF(2-10)| are below max(AUTOCORR_LAG1_MAX, band) and max(AUTOCORR_MEAN_MAX, band)."""
    per, curves = {}, []
    for s, r in returns.items():
        c = acf(r)
        if c is None or len(c) < SHORT_LAGS:
            per[s] = {"acf_1": None, "mean_abs_acf_2_10": None, "band": None, "passed": None}
            continue
        curves.append(c)
        b = band(len(r))
        a1, m = float(c[0]), float(np.abs(c[1:SHORT_LAGS]).mean())
        per[s] = {"acf_1": a1, "mean_abs_acf_2_10": m, "band": b,
                  "passed": abs(a1) < max(AUTOCORR_LAG1_MAX, b) and m < max(AUTOCORR_MEAN_MAX, b)}
    a1 = _median(v["acf_1"] for v in per.values())
    m = _median(v["mean_abs_acf_2_10"] for v in per.values())
    b = _median(v["band"] for v in per.values())
    passed = None
    if a1 is not None and m is not None:
        passed = abs(a1) < max(AUTOCORR_LAG1_MAX, b) and m < max(AUTOCORR_MEAN_MAX, b)
    stats = {"acf_1": a1, "mean_abs_acf_2_10": m, "band": b, "acf": _median_curve(curves)}
    note = None if passed is not None else "too few returns or constant prices"
    if passed is False and m < max(AUTOCORR_MEAN_MAX, b):
        note = "fails on lag 1 only" + (" (negative: bid-ask bounce / quote reversion)" if a1 < 0 else "")
    return _fact(
        "no autocorrelation", "ACF(1) of r; mean |ACF| of r, lags 2-10", a1, stats,
        f"< max({AUTOCORR_LAG1_MAX:g}, band) / < max({AUTOCORR_MEAN_MAX:g}, band)",
        passed, per, note,
    )


def mean_reversion(mispricing: dict[str, np.ndarray]) -> dict[str, Any]:
    """AR(1) of log(price / fair); passes if the median b is in (0, 1) and the median
    Dickey-Fuller statistic is below DF_CRITICAL. n/a without a fair value."""
    threshold = f"0 < b < 1, t = (b-1)/se(b) < {DF_CRITICAL:g}"
    if not mispricing:
        return _fact("mean reversion", "AR(1) b of log(price/fair); half-life", None, {}, threshold,
                     None, {}, "no fair value recorded")
    per = {}
    for s, x in mispricing.items():
        f = ar1_fit(x)
        if f is None:
            per[s] = {"b": None, "half_life": None, "df_stat": None, "passed": None}
        else:
            per[s] = {"b": f["b"], "half_life": f["half_life"], "df_stat": f["df_stat"],
                      "passed": 0 < f["b"] < 1 and f["df_stat"] < DF_CRITICAL}
    b = _median(v["b"] for v in per.values())
    t = _median(v["df_stat"] for v in per.values())
    half = -math.log(2.0) / math.log(b) if b is not None and 0 < b < 1 else None
    passed = None if b is None else (0 < b < 1 and t < DF_CRITICAL)
    stats = {"b": b, "half_life": half, "df_stat": t,
             "symbols_with_half_life": sum(v["half_life"] is not None for v in per.values())}
    return _fact(
        "mean reversion", "AR(1) b of log(price/fair); half-life = -ln2/ln b", b, stats, threshold,
        passed, per, None if b is not None else "too few ticks or constant log(price/fair)",
    )


def _median_curve(curves: list[np.ndarray]) -> list[float] | None:
    if not curves:
        return None
    n = min(len(c) for c in curves)
    return np.median(np.stack([c[:n] for c in curves]), axis=0).tolist()


def stylized_facts(prices: dict[str, Any]) -> list[dict[str, Any]]:
    """The four facts of a run's prices (heavy tails, volatility clustering, no
    autocorrelation, mean reversion toward fair value), each a JSON-able dict with
    ``name, statistic, value, statistics, threshold, passed (bool or None), per_symbol, note``."""
    r = log_returns(prices)
    return [heavy_tails(r), volatility_clustering(r), no_autocorrelation(r), mean_reversion(log_mispricing(prices))]


def _fmt(v, spec=".4f") -> str:
    return "-" if v is None else format(v, spec)


def fact_value(f: dict[str, Any]) -> tuple[str, str]:
    """A fact's statistic and its value(s) as text (several where the fact tests several)."""
    st = f["statistics"]
    if f["name"] == "heavy tails":
        value = " / ".join(_fmt(st.get(f"kurtosis_h{h}"), ".2f") for h in KURTOSIS_HORIZONS)
        stat = "excess kurtosis h=" + "/".join(map(str, KURTOSIS_HORIZONS))
    elif f["name"] == "no autocorrelation":
        value = f"{_fmt(st.get('acf_1'))} / {_fmt(st.get('mean_abs_acf_2_10'))}"
        stat = "ACF(1) / mean |ACF(2-10)| of r"
    elif f["name"] == "mean reversion":
        value = f"b={_fmt(st.get('b'))} hl={_fmt(st.get('half_life'), '.1f')} t={_fmt(st.get('df_stat'), '.1f')}"
        stat = "AR(1) of log(p/fair)"
    else:
        value, stat = _fmt(f["value"]), f["statistic"]
    return stat, value


def format_facts_table(facts: list[dict[str, Any]]) -> str:
    """Aligned text table: fact, statistic, value, threshold, PASS/FAIL/n/a (``band`` is
    the 95% band 1.96 / sqrt(T) of an i.i.d. series of T returns)."""
    rows = [("fact", "statistic", "value", "threshold", "result")]
    for f in facts:
        stat, value = fact_value(f)
        result = {True: "PASS", False: "FAIL", None: "n/a"}[f["passed"]]
        rows.append((f["name"], stat, value, f["threshold"], result))
    return text_table(rows)


def failed_facts(facts: list[dict[str, Any]]) -> list[str]:
    """One line per fact that failed: its name, statistic, value and the threshold it
    missed, e.g. ``heavy tails: excess kurtosis h=1/5/20 = 0.12 / 0.05 / 0.01 (needs > 1 at h=1)``."""
    out = []
    for f in facts:
        if f["passed"] is False:
            stat, value = fact_value(f)
            out.append(f"{f['name']}: {stat} = {value} (needs {f['threshold']})")
    return out


# --------------------------------------------------------------------------- events


def _group_mean(a: np.ndarray, cols: list[int]) -> np.ndarray:
    """Mean over ``cols`` of the finite values per row (NaN where none), without warnings."""
    if not cols:
        return np.full(len(a), np.nan)
    sub = a[:, cols]
    ok = np.isfinite(sub)
    n = ok.sum(axis=1)
    s = np.where(ok, sub, 0.0).sum(axis=1)
    return np.where(n > 0, s / np.maximum(n, 1), np.nan)


def _affected(prices: dict[str, Any], event: dict[str, Any]) -> list[int]:
    names = prices["symbols"]
    cols = [names.index(s) for s in event.get("symbols", []) if s in names]
    if cols:
        return cols
    target = event.get("target", "")
    if target in names:
        return [names.index(target)]
    if target == "all":
        return list(range(len(names)))
    return [j for j, sec in enumerate(prices["sectors"]) if sec and sec == target]


def _move(g: np.ndarray, ticks: np.ndarray, pre: slice, post: slice, direction: int) -> dict[str, Any]:
    """Pre-event level, extreme in ``direction`` within ``post``, move in %, and ticks from
    the extreme until the series is back half way to the pre-event level."""
    out = {"pre": None, "extreme": None, "extreme_tick": None, "move_pct": None, "half_recovery_ticks": None}
    base = g[pre]
    base = base[np.isfinite(base)]
    seg = g[post]
    if not len(base) or not np.isfinite(seg).any():
        return out
    level = float(base.mean())
    if direction == 0:  # no sign given: the larger deviation
        hi, lo = np.nanmax(seg) - level, level - np.nanmin(seg)
        direction = 1 if hi > lo else -1
    k = int(np.nanargmin(seg) if direction < 0 else np.nanargmax(seg))
    ext = float(seg[k])
    out.update(pre=level, extreme=ext, extreme_tick=int(ticks[post][k]), move_pct=(ext / level - 1.0) * 100.0)
    if ext != level:
        half = level + (ext - level) / 2.0
        rest = seg[k + 1:]
        back = rest >= half if direction < 0 else rest <= half
        hits = np.flatnonzero(back & np.isfinite(rest))
        if len(hits):
            out["half_recovery_ticks"] = int(ticks[post][k + 1 + hits[0]] - ticks[post][k])
    return out


def event_response(prices: dict[str, Any], events: list[dict[str, Any]], window: int = 200,
                   baseline: int = 20) -> list[dict[str, Any]]:
    """One row per event: the affected symbols' mean price moves (in %) from its pre-event
    level (mean of the ``baseline`` ticks before the event) to its extreme within the
    ``window`` ticks from the event tick on (the minimum when the event lowered fair value,
    the maximum when it raised it; without fair values, by the sign of ``size``; else the
    larger deviation); the other symbols' mean
    price measured the same way (same direction); ``relative_move_pct`` = affected minus
    others; ``half_recovery_ticks`` from the extreme until the affected price is back half
    way to the pre-event level (None if not within the window); and ``fair_move_pct``, the
    affected symbols' mean fair value from its pre-event level to the window's last tick."""
    ticks = prices["ticks"]
    p = price_series(prices)
    fair = np.where(prices["fair"] > 0, prices["fair"], np.nan)
    rows = []
    for ev in events:
        aff = _affected(prices, ev)
        others = [j for j in range(len(prices["symbols"])) if j not in aff]
        idx = int(np.searchsorted(ticks, ev["tick"], side="left"))
        pre, post = slice(max(0, idx - baseline), idx), slice(idx, min(len(ticks), idx + window))
        size = ev.get("size") or 0.0
        # The way fair value moved (a rate hike has a positive size and lowers prices);
        # without a recorded fair value, the sign of the size.
        direction = 0
        if ev.get("fair_before") is not None and ev.get("fair_after") is not None:
            direction = int(np.sign(ev["fair_after"] - ev["fair_before"]))
        if direction == 0:
            direction = int(np.sign(size))
        m = _move(_group_mean(p, aff), ticks, pre, post, direction)
        if direction == 0 and m["move_pct"] is not None:
            direction = 1 if m["move_pct"] > 0 else -1
        o = _move(_group_mean(p, others), ticks, pre, post, direction) if others else {"move_pct": None}
        fg = _group_mean(fair, aff)
        f_pre, f_post = fg[pre], fg[post]
        f_pre = f_pre[np.isfinite(f_pre)]
        f_end = f_post[np.isfinite(f_post)]
        fair_move = (float(f_end[-1]) / float(f_pre.mean()) - 1.0) * 100.0 if len(f_pre) and len(f_end) else None
        rel = None if m["move_pct"] is None or o["move_pct"] is None else m["move_pct"] - o["move_pct"]
        rows.append(_clean({
            "tick": ev["tick"], "kind": ev["kind"], "target": ev["target"], "size": size,
            "symbols": [prices["symbols"][j] for j in aff],
            "pre_price": m["pre"], "extreme_price": m["extreme"], "extreme_tick": m["extreme_tick"],
            "move_pct": m["move_pct"], "others_move_pct": o["move_pct"], "relative_move_pct": rel,
            "half_recovery_ticks": m["half_recovery_ticks"], "fair_move_pct": fair_move,
        }))
    return rows


def format_event_table(rows: list[dict[str, Any]]) -> str:
    """Aligned text table of ``event_response`` rows."""
    head = ("tick", "kind", "target", "size", "symbols", "move %", "others %", "relative %", "half rec.", "fair %")
    table = [head]
    for r in rows:
        table.append((
            str(r["tick"]), r["kind"], r["target"], _fmt(r["size"], "+.4g"), str(len(r["symbols"])),
            _fmt(r["move_pct"], "+.2f"), _fmt(r["others_move_pct"], "+.2f"), _fmt(r["relative_move_pct"], "+.2f"),
            "-" if r["half_recovery_ticks"] is None else str(r["half_recovery_ticks"]),
            _fmt(r["fair_move_pct"], "+.2f"),
        ))
    return text_table(table, left={1, 2})


# --------------------------------------------------------------------------- charts

MAX_SYMBOL_LINES = 4
"""Up to this many symbols the event study draws them in one panel, else one panel per sector."""
GROUP_MAX_SYMBOLS = 25
"""A sector of more symbols than this is drawn over several panels (its thin lines stay apart)."""
DIRECT_LABELS = 6
"""A sector panel with up to this many symbols names each line at its end; a larger one
names its best and worst symbol."""
MAX_EVENT_LABELS = 40
"""Event markers beyond this many are drawn without labels."""


def symbol_groups(sectors: list[str], max_size: int = GROUP_MAX_SYMBOLS) -> list[tuple[str, list[int]]]:
    """The symbols (indices) by sector, sectors in order of first appearance; a sector of
    more than ``max_size`` symbols is split into near-equal panels titled ``tech 1/3`` ...
    (``market`` when no sector is given)."""
    by_sector: dict[str, list[int]] = {}
    for j, sec in enumerate(sectors):
        by_sector.setdefault(sec or "market", []).append(j)
    groups = []
    for sec, members in by_sector.items():
        parts = math.ceil(len(members) / max_size)
        if parts == 1:
            groups.append((sec, members))
            continue
        for i, chunk in enumerate(np.array_split(np.array(members), parts)):
            groups.append((f"{sec} {i + 1}/{parts}", chunk.tolist()))
    return groups


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_event_study(prices: dict[str, Any], events: list[dict[str, Any]], path: str | Path,
                     title: str | None = None) -> None:
    """Write the event study (:func:`event_study_figure`) as a PNG."""
    fig = event_study_figure(prices, events, title)
    save_figure(fig, path, dpi=110)
    _plt().close(fig)


def event_study_figure(prices: dict[str, Any], events: list[dict[str, Any]], title: str | None = None):
    """Every symbol's price, normalised to 100 at its first price, with a vertical marker
    per event (labelled ``kind target`` where it hits the panel's symbols). Up to
    MAX_SYMBOL_LINES symbols (or without sectors and few symbols): one panel, a line per
    symbol and its fair value dashed in the same colour. Beyond: one panel per sector
    (split past GROUP_MAX_SYMBOLS), every symbol a thin line, the sector's mean price in
    black and its mean fair value dashed red. Legends sit outside the axes."""
    plt = _plt()
    ticks, names, sectors = prices["ticks"], prices["symbols"], prices["sectors"]
    p = price_series(prices)
    fair = np.where(prices["fair"] > 0, prices["fair"], np.nan)
    index, fair_index = indexed(p, fair)
    if len(names) <= MAX_SYMBOL_LINES:
        groups = [("", list(range(len(names))))]
    else:
        groups = symbol_groups(list(sectors) if any(sectors) else ["market"] * len(names))
    cols = 1 if len(groups) == 1 else 2 if len(groups) <= 4 else 3
    rows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11 if cols == 1 else 6.2 * cols, 5.5 if rows == 1 else 3.4 * rows),
                             sharex=True, squeeze=False, layout="constrained")
    title = title or f"event study: {len(events)} event(s), {len(names)} symbol(s)"
    for ax, (label, members_) in zip(axes.flat, groups):
        if label:
            _sector_lines(ax, ticks, label, members_, names, index, fair_index)
        else:
            _symbol_lines(ax, ticks, members_, names, index, fair_index)
        members = {names[j] for j in members_}
        labelled = 0
        for ev in events:
            size = ev.get("size") or 0.0
            c = "tab:red" if size < 0 else ("tab:green" if size > 0 else "gray")
            ax.axvline(ev["tick"], color=c, lw=0.8, ls=":", alpha=0.9)
            hits = not ev.get("symbols") or members & set(ev["symbols"])
            if hits and labelled < MAX_EVENT_LABELS:
                labelled += 1
                ax.text(ev["tick"], 0.99, f" {ev['kind']} {ev['target']}", transform=ax.get_xaxis_transform(),
                        rotation=90, va="top", ha="right", fontsize=7, color=c)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax in axes.flat[max(0, len(groups) - cols):len(groups)]:  # the lowest panel of each column
        ax.tick_params(labelbottom=True)
        ax.set_xlabel("tick")
    for ax in axes[:, 0]:
        ax.set_ylabel("price (first price = 100)")
    fig.suptitle(title)
    return fig


def _symbol_lines(ax, ticks, cols: list[int], names, index: np.ndarray, fair_index: np.ndarray) -> None:
    """One line per symbol and its fair value dashed in the same colour; the legend
    outside the axes, on the right."""
    colors = _plt().rcParams["axes.prop_cycle"].by_key()["color"]
    for i, j in enumerate(cols):
        c = colors[i % len(colors)]
        ax.plot(ticks, index[:, j], color=c, lw=1.1, label=names[j])
        if np.isfinite(fair_index[:, j]).any():
            ax.plot(ticks, fair_index[:, j], color=c, lw=0.9, ls="--", alpha=0.8)
    if np.isfinite(fair_index[:, cols]).any():
        ax.plot([], [], color="gray", ls="--", label="fair value")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _last_finite(y: np.ndarray) -> float:
    finite = np.flatnonzero(np.isfinite(y))
    return float(y[finite[-1]]) if len(finite) else np.nan


def _sector_lines(ax, ticks, label: str, cols: list[int], names, index: np.ndarray, fair_index: np.ndarray) -> None:
    """Every symbol of a sector as a thin line (labelled with its name, no legend), the
    mean in black, the mean fair value dashed red."""
    lines = [ax.plot(ticks, index[:, j], lw=0.5, alpha=0.6, label=names[j])[0] for j in cols]
    ends = np.array([_last_finite(index[:, j]) for j in cols])
    if np.isfinite(ends).any():  # names at the line ends: all of a few, else the best and the worst
        shown = range(len(cols)) if len(cols) <= DIRECT_LABELS else {int(np.nanargmax(ends)), int(np.nanargmin(ends))}
        for i in shown:
            if np.isfinite(ends[i]):
                ax.annotate(names[cols[i]], (ticks[-1], ends[i]), xytext=(2, 0), textcoords="offset points",
                            fontsize=7, va="center", color=lines[i].get_color())
        ax.margins(x=0.07)
    ax.plot(ticks, _group_mean(index, cols), color="black", lw=1.4, label="_mean")
    fair = _group_mean(fair_index, cols)
    if np.isfinite(fair).any():
        ax.plot(ticks, fair, color="tab:red", lw=1.0, ls="--", label="_fair")
    ax.set_title(f"{label}: {len(cols)} symbol(s); black: mean, red dashed: mean fair value", loc="left", fontsize=8)


def plot_stylized_facts(facts: list[dict[str, Any]], returns: dict[str, np.ndarray], path: str | Path,
                        mispricing: dict[str, np.ndarray] | None = None) -> None:
    """Four panels: pooled standardised returns against a normal density (log scale); the
    median ACF of r and of |r| over symbols with the 95% band; log(price / fair) per
    symbol (when ``mispricing`` is given)."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax_h, ax_m, ax_r, ax_a = axes[0, 0], axes[0, 1], axes[1, 0], axes[1, 1]
    z = [(r - r.mean()) / r.std() for r in returns.values() if len(r) >= MIN_SAMPLES and r.std() > 0]
    if z:
        z = np.concatenate(z)
        lim = max(5.0, float(np.quantile(np.abs(z), 0.999)))
        ax_h.hist(z, bins=np.linspace(-lim, lim, 81), density=True, color="tab:blue", alpha=0.6, label="returns")
        xs = np.linspace(-lim, lim, 400)
        ax_h.plot(xs, np.exp(-xs**2 / 2) / math.sqrt(2 * math.pi), color="black", lw=1, label="normal")
        ax_h.set_yscale("log")
        ax_h.legend(fontsize=8, frameon=False)
    else:
        ax_h.text(0.5, 0.5, "too few returns", ha="center", transform=ax_h.transAxes)
    ht = next((f for f in facts if f["name"] == "heavy tails"), None)
    k1 = ht["value"] if ht else None
    ax_h.set_title("returns (standardised per symbol)" + ("" if k1 is None else f", excess kurtosis {k1:.2f}"),
                   fontsize=10)
    n = int(np.median([len(r) for r in returns.values()])) if returns else 0
    for ax, fn, label in ((ax_r, lambda r: r, "r"), (ax_a, np.abs, "|r|")):
        curves = [c for c in (acf(fn(r)) for r in returns.values()) if c is not None]
        med = _median_curve(curves)
        if med:
            lags = np.arange(1, len(med) + 1)
            ax.bar(lags, med, color="tab:blue", width=0.7)
            ax.axhspan(-band(n), band(n), color="gray", alpha=0.2, label="95% band (i.i.d.)")
            ax.axhline(0, color="black", lw=0.5)
            ax.legend(fontsize=8, frameon=False)
        else:
            ax.text(0.5, 0.5, "too few returns", ha="center", transform=ax.transAxes)
        ax.set_title(f"ACF of {label} (median over symbols)", fontsize=10)
        ax.set_xlabel("lag (ticks)")
    if mispricing:
        for s, x in list(mispricing.items())[:10]:
            ax_m.plot(x, lw=0.7, label=s)
        ax_m.axhline(0, color="black", lw=0.5)
        ax_m.legend(fontsize=7, frameon=False, ncol=5)
        ax_m.set_xlabel("tick index")
    else:
        ax_m.text(0.5, 0.5, "no fair value", ha="center", transform=ax_m.transAxes)
    mr = next((f for f in facts if f["name"] == "mean reversion"), None)
    hl = mr["statistics"].get("half_life") if mr else None
    ax_m.set_title("log(price / fair)" + ("" if hl is None else f", median half-life {hl:.1f} ticks"), fontsize=10)
    verdict = {True: "PASS", False: "FAIL", None: "n/a"}
    title = "stylized facts: " + ", ".join(f"{f['name']} {verdict[f['passed']]}" for f in facts)
    failed = failed_facts(facts)
    fig.suptitle("\n".join([title, *failed]), fontsize=11 if not failed else 9)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)
