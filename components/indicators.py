"""Technical indicators: which series are needed (static) and what is carried between ticks.

* ``IndicatorSpec``: hashable, fixes every shape. Strategies each declare the series they
  need and ``merge`` the declarations, so every series is computed once per tick for the
  whole world, not once per agent.
* ``IndicatorState``: the world resource updated once per tick with one bar per symbol
  (``systems.indicators.update_indicators``).
* ``Indicators``: what strategies read (``systems.indicators.read_indicators``): per kind,
  arrays ``[S, P]`` (symbols x that kind's period sets, in spec order) of values and
  ready flags, plus lookups by period.

Prices are float64 currency units. Bars are counted from 0: "ready at bar t" means the
value computed after absorbing bar ``t`` (the ``t+1``-th bar) is the first one defined.
Where a value is not ready it reads as exactly 0.0 (every field, including RSI and %B);
check ``ready`` before using a value.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


def _period(kind: str, value: Any, what: str = "period") -> int:
    """A period as a Python int >= 1, or a ValueError naming the kind and the value."""
    if isinstance(value, bool):
        raise ValueError(f"IndicatorSpec.{kind}: {what} must be an integer >= 1, got {value!r}")
    try:
        p = operator.index(value)
    except TypeError:
        raise ValueError(f"IndicatorSpec.{kind}: {what} must be an integer >= 1, got {value!r}") from None
    if p < 1:
        raise ValueError(f"IndicatorSpec.{kind}: {what} must be >= 1, got {p}")
    return p


def _periods(kind: str, values: Any) -> tuple[int, ...]:
    return tuple(sorted({_period(kind, v) for v in values}))


def _macd(values: Any) -> tuple[tuple[int, int, int], ...]:
    out = set()
    for v in values:
        try:
            fast, slow, signal = v
        except (TypeError, ValueError):
            raise ValueError(f"IndicatorSpec.macd: each entry is (fast, slow, signal), got {v!r}") from None
        fast = _period("macd", fast, "fast period")
        slow = _period("macd", slow, "slow period")
        signal = _period("macd", signal, "signal period")
        if fast >= slow:
            raise ValueError(f"IndicatorSpec.macd: fast period must be < slow period, got {v!r}")
        out.add((fast, slow, signal))
    return tuple(sorted(out))


def _bollinger(values: Any) -> tuple[tuple[int, float], ...]:
    out = set()
    for v in values:
        try:
            period, k = v
        except (TypeError, ValueError):
            raise ValueError(f"IndicatorSpec.bollinger: each entry is (period, k), got {v!r}") from None
        period = _period("bollinger", period)
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k < 0:
            raise ValueError(f"IndicatorSpec.bollinger: k must be a finite number >= 0, got {k!r} in {v!r}")
        out.add((period, float(k)))
    return tuple(sorted(out))


@dataclasses.dataclass(frozen=True)
class IndicatorSpec:
    """Which indicator series to compute. Static (hashable): it fixes every shape.

    Each field is a collection of period sets; the constructor validates them and stores
    them sorted and deduplicated, so two specs asking for the same series are equal (and
    share one compiled update). "Spec order" below means that sorted order.

    sma: periods p (ready at bar p-1).
    ema: periods p; alpha = 2/(p+1), seeded with the SMA of the first p closes (ready at
        bar p-1).
    rsi: Wilder periods p (ready at bar p: it needs p close-to-close changes).
    macd: (fast, slow, signal) with fast < slow; the line is ready at bar slow-1, the
        signal and histogram at bar slow+signal-2.
    bollinger: (period, k) with k >= 0 standard deviations (ready at bar period-1).
    atr: Wilder periods p (ready at bar p-1; the first bar's true range is high-low).
    """

    sma: tuple[int, ...] = ()
    ema: tuple[int, ...] = ()
    rsi: tuple[int, ...] = ()
    macd: tuple[tuple[int, int, int], ...] = ()
    bollinger: tuple[tuple[int, float], ...] = ()
    atr: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        for kind in ("sma", "ema", "rsi", "atr"):
            set_(self, kind, _periods(kind, getattr(self, kind)))
        set_(self, "macd", _macd(self.macd))
        set_(self, "bollinger", _bollinger(self.bollinger))

    def merge(self, other: IndicatorSpec) -> IndicatorSpec:
        """The union of two specs (sorted, deduplicated)."""
        return IndicatorSpec(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self)}
        )

    # Derived layout of the state (computed, never stored).

    @property
    def window(self) -> int:
        """W: closes kept for the SMA and Bollinger windows (at least 1)."""
        return max((1, *self.sma, *(p for p, _ in self.bollinger)))

    @property
    def window_periods(self) -> tuple[int, ...]:
        """Distinct SMA and Bollinger periods: each window mean is computed once."""
        return tuple(sorted(set(self.sma) | {p for p, _ in self.bollinger}))

    @property
    def ema_periods(self) -> tuple[int, ...]:
        """Distinct EMA periods: the EMAs asked for plus each MACD's fast and slow."""
        return tuple(sorted(set(self.ema) | {f for f, _, _ in self.macd} | {s for _, s, _ in self.macd}))


@struct.dataclass
class IndicatorState:
    """What the indicators carry from tick to tick (a world resource, rows are symbols).

    The smoothed series (EMA, MACD signal, RSI averages, ATR) hold the running sum of
    their inputs during their warm-up and the smoothed value from their ready bar on.
    """

    bars: jax.Array  # i64[] bars absorbed so far (one per tick, all symbols together)
    window: jax.Array  # f64[S, W] last W closes, a ring buffer: bar t at column t % W
    close: jax.Array  # f64[S] the last bar's close (0 before the first bar)
    ema: jax.Array  # f64[S, E] EMA of the close per spec.ema_periods
    signal: jax.Array  # f64[S, M] EMA of the MACD line per spec.macd
    gain: jax.Array  # f64[S, R] Wilder average gain per spec.rsi
    loss: jax.Array  # f64[S, R] Wilder average loss (>= 0) per spec.rsi
    atr: jax.Array  # f64[S, A] Wilder average true range per spec.atr


@struct.dataclass
class Series:
    """One indicator series per symbol and period set. 0.0 where not ready."""

    value: jax.Array  # f64[S, P]
    ready: jax.Array  # bool[S, P]


@struct.dataclass
class MACD:
    """MACD per symbol and (fast, slow, signal) set. 0.0 where not ready."""

    line: jax.Array  # f64[S, P] EMA(fast) - EMA(slow), ready with line_ready
    signal: jax.Array  # f64[S, P] EMA(signal) of the line, ready with ready
    hist: jax.Array  # f64[S, P] line - signal, ready with ready
    line_ready: jax.Array  # bool[S, P] from bar slow-1
    ready: jax.Array  # bool[S, P] signal and hist, from bar slow+signal-2


@struct.dataclass
class Bollinger:
    """Bollinger bands per symbol and (period, k) set. 0.0 where not ready."""

    middle: jax.Array  # f64[S, P] SMA(period)
    upper: jax.Array  # f64[S, P] middle + k * population std over the same window
    lower: jax.Array  # f64[S, P] middle - k * std
    percent_b: jax.Array  # f64[S, P] (close - lower) / (upper - lower); 0.5 where upper == lower
    ready: jax.Array  # bool[S, P] from bar period-1


def _column(kind: str, have: tuple, key: Any) -> int:
    try:
        return have.index(key)
    except ValueError:
        raise KeyError(f"{kind} {key!r} is not in the IndicatorSpec (it has {have!r})") from None


@struct.dataclass
class Indicators:
    """Every indicator of the spec after the last bar. Lookups by period are static."""

    sma: Series  # [S, len(spec.sma)]
    ema: Series  # [S, len(spec.ema)]
    rsi: Series  # [S, len(spec.rsi)]
    macd: MACD  # [S, len(spec.macd)]
    bollinger: Bollinger  # [S, len(spec.bollinger)]
    atr: Series  # [S, len(spec.atr)]
    spec: IndicatorSpec = struct.field(pytree_node=False)

    def sma_at(self, period: int) -> tuple[jax.Array, jax.Array]:
        """(value f64[S], ready bool[S]) of SMA(period). KeyError if not in the spec."""
        i = _column("sma", self.spec.sma, period)
        return self.sma.value[:, i], self.sma.ready[:, i]

    def ema_at(self, period: int) -> tuple[jax.Array, jax.Array]:
        """(value f64[S], ready bool[S]) of EMA(period). KeyError if not in the spec."""
        i = _column("ema", self.spec.ema, period)
        return self.ema.value[:, i], self.ema.ready[:, i]

    def rsi_at(self, period: int) -> tuple[jax.Array, jax.Array]:
        """(value f64[S] in [0, 100], ready bool[S]) of RSI(period). KeyError if not in the spec."""
        i = _column("rsi", self.spec.rsi, period)
        return self.rsi.value[:, i], self.rsi.ready[:, i]

    def atr_at(self, period: int) -> tuple[jax.Array, jax.Array]:
        """(value f64[S], ready bool[S]) of ATR(period). KeyError if not in the spec."""
        i = _column("atr", self.spec.atr, period)
        return self.atr.value[:, i], self.atr.ready[:, i]

    def atr_ratio(self, short: int, long: int) -> jax.Array:
        """ATR(short) / ATR(long), the realised-volatility ratio; 1 where either is not
        ready or ATR(long) is 0. f64[S]. KeyError if a period is not in the spec."""
        s, ready_s = self.atr_at(short)
        lng, ready_l = self.atr_at(long)
        ok = ready_s & ready_l & (lng > 0)
        return jnp.where(ok, s / jnp.where(ok, lng, 1.0), 1.0)

    def macd_at(self, fast: int, slow: int, signal: int) -> MACD:
        """MACD(fast, slow, signal) with fields of shape [S]. KeyError if not in the spec."""
        i = _column("macd", self.spec.macd, (fast, slow, signal))
        return jax.tree.map(lambda a: a[:, i], self.macd)

    def bollinger_at(self, period: int, k: float) -> Bollinger:
        """Bollinger(period, k) with fields of shape [S]. KeyError if not in the spec."""
        i = _column("bollinger", self.spec.bollinger, (period, float(k)))
        return jax.tree.map(lambda a: a[:, i], self.bollinger)
