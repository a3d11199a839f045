"""features: what a learning agent sees of the market, as a versioned contract.

One function, :func:`features`, builds the observation of some agents from the read
phase's frame (``frame.view`` and ``frame.indicators``) and the state: the training
environments (``qtg.rl``) call it on the world after each step, and a trained policy
trading in a simulation calls it in its ``decide`` on the frame of its tick, so a policy
sees in a run exactly what it saw in training. :data:`SPEC` names every feature with its
scale and clip (``observation = clip(raw * scale, -clip, clip)``, as float32); it is
written as JSON next to every checkpoint, and its ``version`` changes whenever a feature
is added, removed or rescaled, so an old checkpoint is refused rather than misread.

Features of agent ``i`` trading symbol ``s`` (prices are the frame's: ``ref`` is the mid
where both sides quote, else the last trade):

=============  ==========================================================  =====  ====
name           raw value                                                   scale  clip
=============  ==========================================================  =====  ====
value_gap      log(fair / ref): the fundamentals' view of the mispricing   100    5
spread         (ask - bid) / ref, 0 where a side is empty                  1000   5
imbalance      (bid_qty - ask_qty) / (bid_qty + ask_qty), 0 if both empty  1      1
news           log change of fair value made by the last tick's news       100    5
trend_fast     log(ref / EMA(5)), 0 until the EMA is ready                 100    5
trend_slow     log(ref / EMA(20)), 0 until the EMA is ready                100    5
rsi            RSI(14) / 100 - 0.5, 0 until ready                          2      1
position       shares held / max_position (short: negative)                1      2
cash_share     cash / (cash + |shares| * ref): the cash share of the book  1      1
=============  ==========================================================  =====  ====
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from components.frame import Frame
from components.indicators import IndicatorSpec
from components.money import SCALE
from components.world import WorldState

EMA_FAST, EMA_SLOW, RSI = 5, 20, 14
INDICATORS = IndicatorSpec(ema=(EMA_FAST, EMA_SLOW), rsi=(RSI,))
"""The indicator series :func:`features` reads (a kind that uses it declares them)."""


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    scale: float
    clip: float
    doc: str


@dataclasses.dataclass(frozen=True)
class ObservationSpec:
    """The observation contract: a version and the features in order."""

    version: int
    features: tuple[Feature, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def size(self) -> int:
        return len(self.features)

    @property
    def high(self) -> np.ndarray:
        """Each feature's bound (its clip), f32[size]: observations lie in [-high, high]."""
        return np.asarray([f.clip for f in self.features], np.float32)

    def to_dict(self) -> dict:
        return {"version": self.version, "features": [dataclasses.asdict(f) for f in self.features]}


SPEC = ObservationSpec(version=2, features=(
    Feature("value_gap", 100.0, 5.0, "log(fair / ref)"),
    Feature("spread", 1000.0, 5.0, "(ask - bid) / ref; 0 where a side is empty"),
    Feature("imbalance", 1.0, 1.0, "(bid_qty - ask_qty) / (bid_qty + ask_qty); 0 where both are empty"),
    Feature("news", 100.0, 5.0, "log change of fair value made by the last tick's news"),
    Feature("trend_fast", 100.0, 5.0, f"log(ref / EMA({EMA_FAST})); 0 until ready"),
    Feature("trend_slow", 100.0, 5.0, f"log(ref / EMA({EMA_SLOW})); 0 until ready"),
    Feature("rsi", 2.0, 1.0, f"RSI({RSI}) / 100 - 0.5; 0 until ready"),
    Feature("position", 1.0, 2.0, "shares held / max_position"),
    Feature("cash_share", 1.0, 1.0, "cash / (cash + |shares| * ref)"),
))
"""The observation contract in force (see the module doc)."""


def _ratio(a: jax.Array, b: jax.Array) -> jax.Array:
    """a / b where b is positive, else 0."""
    return jnp.where(b > 0, a / jnp.where(b > 0, b, 1.0), 0.0)


def _log_ratio(a: jax.Array, b: jax.Array) -> jax.Array:
    """log(a / b) where both are positive, else 0."""
    ok = (a > 0) & (b > 0)
    return jnp.where(ok, jnp.log(jnp.where(ok, a, 1.0) / jnp.where(ok, b, 1.0)), 0.0)


def features(state: WorldState, frame: Frame, rows: jax.Array, symbol: jax.Array,
             max_position: jax.Array) -> jax.Array:
    """The observation of agents ``rows`` (i32[M]) trading ``symbol`` (i32[M]) with
    position limits ``max_position`` (i64[M]): f32[M, SPEC.size], each feature scaled and
    clipped as :data:`SPEC` says. ``frame``: the read phase's (``observe_market``), whose
    indicators include :data:`INDICATORS`. Pure; reads only."""
    view, ind, m = frame.view, frame.indicators, state.market
    ref = view.ref[symbol]  # units
    bid_qty = jnp.where(view.bid[symbol] > 0, m.bid_qty[symbol], 0).astype(jnp.float64)
    ask_qty = jnp.where(view.ask[symbol] > 0, m.ask_qty[symbol], 0).astype(jnp.float64)
    depth = bid_qty + ask_qty

    def trend(period: int) -> jax.Array:  # the indicators are in currency
        ema, ready = ind.ema_at(period)
        return jnp.where(ready[symbol], _log_ratio(ref, ema[symbol] * SCALE), 0.0)

    rsi, ready = ind.rsi_at(RSI)
    rsi = jnp.where(ready[symbol], rsi[symbol] / 100.0 - 0.5, 0.0)
    shares = state.wallet.position[rows, symbol].astype(jnp.float64)
    cash = state.wallet.cash[rows].astype(jnp.float64)
    book = cash + jnp.abs(shares) * ref
    raw = jnp.stack([
        _log_ratio(view.fair[symbol], ref),
        _ratio(view.spread[symbol], ref),
        _ratio(bid_qty - ask_qty, depth),
        view.news[symbol],
        trend(EMA_FAST),
        trend(EMA_SLOW),
        rsi,
        shares / jnp.maximum(max_position, 1),
        _ratio(cash, book),
    ], axis=1)
    scale = jnp.asarray([f.scale for f in SPEC.features])
    clip = jnp.asarray(SPEC.high, jnp.float64)
    return jnp.clip(raw * scale, -clip, clip).astype(jnp.float32)
