"""Market resources: per-symbol state shared by every agent (rows are symbols)."""

from __future__ import annotations

import jax
from flax import struct


@struct.dataclass
class MarketState:
    """Book summary after the last match, and the last trade. Prices in units, 0 = none."""

    bid: jax.Array  # i64[S] best bid
    ask: jax.Array  # i64[S] best ask
    bid_qty: jax.Array  # i64[S] shares at the best bid
    ask_qty: jax.Array  # i64[S] shares at the best ask
    last: jax.Array  # i64[S] last trade price (initial price before any trade): the bar's close
    high: jax.Array  # i64[S] highest trade price of the last tick (last price if none)
    low: jax.Array  # i64[S] lowest trade price of the last tick (last price if none)
    volume: jax.Array  # i64[S] shares traded in the last tick


@struct.dataclass
class MarketView:
    """What agents see when they decide (the observe system's output). Units."""

    bid: jax.Array  # i64[S]
    ask: jax.Array  # i64[S]
    last: jax.Array  # i64[S]
    mid: jax.Array  # f64[S] (bid+ask)/2, or the reference where a side is empty
    ref: jax.Array  # f64[S] reference price: mid if both sides quote, else last trade
    spread: jax.Array  # i64[S] ask - bid, 0 where a side is empty
    fair: jax.Array  # f64[S] fair value (fundamentals and sentiment), units
    news: jax.Array  # f64[S] log change of fair value made by the last tick's news events
