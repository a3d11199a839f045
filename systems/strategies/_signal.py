"""Shared parts of the indicator-driven (signal) strategies, and the helper that declares one.

A signal trader holds at most one symbol, long only. Each tick its strategy turns an
indicator into a desired trade, ``want`` shares (> 0 buy, < 0 sell, 0 nothing), and
``trade_rows`` turns that into the agent's two order rows: a CANCEL of its resting order
(it never means to leave one; the row is idle unless a slot is live) and an aggressive
immediate-or-cancel order priced ``collar`` through the reference. The order is sized by
the smallest of the wish, the agent's per-order ``size``, the room left under its
``max_position`` and the cash or shares not reserved by resting orders, so it can neither
overshoot its limit nor fail the pre-trade checks.

Indicator periods are ranges ``[lo, hi]`` of integers like every other per-agent
parameter: each agent draws one period uniformly, and the kind's ``IndicatorSpec`` asks
for every period in the range, so any draw has its column.

Declaring a signal kind (``signal_kind``). A module gives its ``KIND``, a ``Config``
extending ``TradeConfig`` (its fields declared with ``setting``), ``indicators(cfg)`` and a pure function
``signal(seen, p) -> i32[M]`` (+1 buy, -1 sell, 0 hold; ``vote`` builds it from
conditions), and binds what ``signal_kind(Config, signal, sizing)`` returns::

    Params, make_params, initial_holdings, decide = signal_kind(Config, signal, by_size)

* ``Params``: ``trade`` (the ``Trade`` limits) and one column [M] per field that
  ``Config`` adds to ``TradeConfig``, same name, same order. Each agent draws its own
  value, in field order, after its limits: a range ``list[int]`` draws integers uniformly
  (i32), a range ``list[float]`` draws floats uniformly (f64), a single ``float`` is the
  same for every agent (f64). Other field types are refused when the kind is declared.
* ``signal`` reads the indicators through ``seen`` (a ``Seen``: each series at the
  agent's own symbol and at the column of its own periods, with ``ready``), never the
  frame or the world; it must return 0 where a series it reads is not ready.
* ``sizing`` turns the signal into shares: ``by_size`` (a buy trades ``size`` shares, a
  sell ``size`` shares) or ``full_or_flat`` (a buy aims at a full ``max_position``, a sell
  at flat, a hold at the current position; it trades toward the aim in slices of
  ``size``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.agents import NO_ORDER
from components.frame import Frame
from components.indicators import MACD, Bollinger, Indicators, Series
from components.orders import OrderBatch, Side
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.fusion import materialised
from systems.strategies._rows import (
    affordable,
    cancel_resting,
    collar_price,
    holdings_in_own_symbol,
    interleave,
    ioc_rows,
)


@dataclasses.dataclass
class TradeConfig:
    """Config fields every signal strategy has; each kind's ``Config`` extends it."""

    count: int = setting(0)
    size: list[int] = setting([10, 50], lo=1, doc=(
        "Range of per-order sizes in shares (each agent draws one)."))
    max_position: list[int] = setting([200, 500], doc=(
        "Range of the largest position an agent may hold, in shares (each agent draws one)."))
    collar: float = setting(0.02, hi=0.5, doc="How far through the reference an order may reach (fraction).")
    cash: float = setting(100_000.0, doc="Starting cash per agent, in currency.")
    shares: int = setting(0, doc="Starting shares per agent in its symbol.")
    latency: int = setting(0, hi=1000, doc=(
        "Ticks between a decision and its arrival at the engine: an order decided at tick t is "
        "validated and matched at t + latency (0: the same tick)."))


TRADE_FIELDS = frozenset(f.name for f in dataclasses.fields(TradeConfig))
"""Fields every signal kind's Config has; the fields a kind adds are its own parameters."""


@struct.dataclass
class Trade:
    """Per-agent trading limits, one row per agent of the kind."""

    symbol: jax.Array  # i32[M]
    size: jax.Array  # i64[M] shares per order
    max_position: jax.Array  # i64[M] shares
    collar: jax.Array  # f64[M] fraction of the reference price


def make_trade(cfg: TradeConfig, count: int, rng: np.random.Generator, n_symbols: int) -> Trade:
    """Draw each agent's limits; symbols are assigned round-robin."""
    return Trade(
        symbol=jnp.asarray(np.arange(count) % n_symbols, jnp.int32),
        size=jnp.asarray(draw_int(rng, cfg.size, count)),
        max_position=jnp.asarray(draw_int(rng, cfg.max_position, count)),
        collar=jnp.full(count, cfg.collar, jnp.float64),
    )


def trade_holdings(cfg: TradeConfig, trade: Trade, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
    return holdings_in_own_symbol(cfg.cash, cfg.shares, trade.symbol, n_symbols)


def draw_int(rng: np.random.Generator, bounds: list[int], count: int) -> np.ndarray:
    """``count`` integers drawn uniformly from the closed range ``bounds = [lo, hi]``. i64."""
    lo, hi = int(bounds[0]), int(bounds[1])
    return rng.integers(lo, hi + 1, count).astype(np.int64)


def period_range(bounds: list[int]) -> tuple[int, ...]:
    """Every integer of the closed range ``[lo, hi]``: the periods an agent may draw."""
    return tuple(range(int(bounds[0]), int(bounds[1]) + 1))


def check_fast_slow(fast: list[int], slow: list[int], what: str) -> None:
    """ValueError unless every period of range ``fast`` is below every one of ``slow``."""
    if fast[1] >= slow[0]:
        raise ValueError(
            f"{what}: every fast period must be < every slow period, got fast {fast}, slow {slow}"
        )


def column(table: tuple, key: jax.Array) -> jax.Array:
    """Column of each agent's period set in a sorted spec table, by equality match.

    ``table``: the spec's period sets (ints, or tuples of numbers), static; ``key``:
    [n] or [n, K] the agents' period sets, each present in the table. Returns i32[n].
    """
    t = jnp.asarray(np.asarray(table, np.float64).reshape(len(table), -1))  # [P, K]
    k = jnp.asarray(key, jnp.float64).reshape(key.shape[0], -1)  # [n, K]
    hit = (k[:, None, :] == t[None, :, :]).all(-1)  # [n, P]
    return jnp.argmax(hit, axis=1).astype(jnp.int32)


def at(values: jax.Array, symbol: jax.Array, col: jax.Array) -> jax.Array:
    """``values[symbol[i], col[i]]`` per agent: a [S, P] indicator read per agent. [n]"""
    return values[symbol, col]


def toward(target: jax.Array, position: jax.Array) -> jax.Array:
    """The trade that takes ``position`` to ``target`` (shares; > 0 buys). i64[n]"""
    return (target - position).astype(jnp.int64)


def trade_rows(
    static: WorldStatic, kind: KindStatic, world: WorldParams, t: Trade, state: WorldState, frame: Frame, want: jax.Array
) -> OrderBatch:
    """Each agent's wish ``want`` i64[n] (shares, > 0 buy, < 0 sell) -> 2 rows per agent.

    Rows per agent: a CANCEL of its live resting order (buy slot first), then an IOC order
    ``collar`` through the reference. The IOC's size is capped by ``size``, the room under
    ``max_position`` (counting a live resting buy as if filled), unreserved cash at the
    order's price (buys) and unreserved shares plus the agent's short room (sells; kinds
    without ``max_short`` are long only). Returns ``count * 2`` rows.
    """
    n = kind.count
    rows = kind.start + jnp.arange(n)
    sym = t.symbol
    tick = world.tick_size[sym]
    ref = frame.view.ref[sym]
    slots = state.slots

    buy = want > 0
    price = collar_price(buy, ref, t.collar, tick)
    live_buy = slots.id[rows, Side.BUY] != NO_ORDER
    pending_buy = jnp.where(live_buy & (slots.symbol[rows, Side.BUY] == sym), slots.remaining[rows, Side.BUY], 0)
    room = t.max_position - state.wallet.position[rows, sym] - pending_buy
    backed = affordable(state, rows, sym, buy, price, world.max_short[rows])
    cap = jnp.where(buy, jnp.minimum(room, backed), backed)
    qty = jnp.maximum(jnp.minimum(jnp.minimum(jnp.abs(want), t.size), cap), 0).astype(jnp.int64)
    # Computed once: the rows' price, qty and valid are separate loops, and each would
    # otherwise run the sizing (the tick: about 0.09 ms less at seed_100k).
    price, qty = materialised(price), materialised(qty)

    new = ioc_rows(static.n_agents, state.tick, rows, sym, buy, price, qty, (want != 0) & (qty > 0))
    return interleave(cancel_resting(state, rows), new)


# ---------------------------------------------------------------------------------------
# Declaring a signal kind


@dataclasses.dataclass(frozen=True)
class Seen:
    """The indicators as each agent of a kind sees them: every series read at the agent's
    own ``symbol`` and at the column of the agent's own period set. Each method returns the
    series' struct (``Series``, ``MACD``, ``Bollinger``) with fields of shape [M]."""

    indicators: Indicators  # the read phase's indicators, [S, P] per series
    symbol: jax.Array  # i32[M] each agent's symbol

    def _read(self, series, table: tuple, key: jax.Array):
        col = column(table, key)
        return jax.tree.map(lambda values: at(values, self.symbol, col), series)

    def sma(self, period: jax.Array) -> Series:
        """SMA(period) per agent; ``period`` i32[M]."""
        return self._read(self.indicators.sma, self.indicators.spec.sma, period)

    def ema(self, period: jax.Array) -> Series:
        """EMA(period) per agent; ``period`` i32[M]."""
        return self._read(self.indicators.ema, self.indicators.spec.ema, period)

    def rsi(self, period: jax.Array) -> Series:
        """RSI(period) per agent, in [0, 100]; ``period`` i32[M]."""
        return self._read(self.indicators.rsi, self.indicators.spec.rsi, period)

    def atr(self, period: jax.Array) -> Series:
        """ATR(period) per agent, in units; ``period`` i32[M]."""
        return self._read(self.indicators.atr, self.indicators.spec.atr, period)

    def macd(self, fast: jax.Array, slow: jax.Array, signal: jax.Array) -> MACD:
        """MACD(fast, slow, signal) per agent; each period i32[M]."""
        key = jnp.stack([fast, slow, signal], axis=1)
        return self._read(self.indicators.macd, self.indicators.spec.macd, key)

    def bollinger(self, period: jax.Array, k: jax.Array) -> Bollinger:
        """Bollinger(period, k) per agent; ``period`` i32[M], ``k`` f64[M]."""
        key = jnp.stack([period.astype(jnp.float64), k], axis=1)
        return self._read(self.indicators.bollinger, self.indicators.spec.bollinger, key)


def vote(buy: jax.Array, sell: jax.Array, ready: jax.Array) -> jax.Array:
    """The signal of each agent: +1 where ``buy``, else -1 where ``sell``, else 0; 0
    wherever not ``ready``. i32[M]"""
    return jnp.where(ready, jnp.where(buy, 1, jnp.where(sell, -1, 0)), 0).astype(jnp.int32)


def by_size(signal: jax.Array, t: Trade, position: jax.Array) -> jax.Array:
    """A buy signal trades ``size`` shares, a sell ``size`` shares, a hold nothing. i64[M]"""
    del position
    return jnp.where(signal > 0, t.size, jnp.where(signal < 0, -t.size, 0))


def full_or_flat(signal: jax.Array, t: Trade, position: jax.Array) -> jax.Array:
    """The trade toward a full ``max_position`` on a buy signal, toward flat on a sell,
    none on a hold (so the rule needs no memory of the signal's last change). i64[M]"""
    target = jnp.where(signal > 0, t.max_position, jnp.where(signal < 0, 0, position))
    return toward(target, position)


def _draw_float_range(rng: np.random.Generator, value: list[float], count: int) -> jax.Array:
    return jnp.asarray(rng.uniform(*value, count), jnp.float64)


def _draw_int_range(rng: np.random.Generator, value: list[int], count: int) -> jax.Array:
    return jnp.asarray(draw_int(rng, value, count), jnp.int32)


def _same_float(rng: np.random.Generator, value: float, count: int) -> jax.Array:
    del rng  # the same for every agent: nothing drawn
    return jnp.full(count, float(value), jnp.float64)


DRAWS: dict[object, Callable[[np.random.Generator, object, int], jax.Array]] = {
    list[int]: _draw_int_range,
    list[float]: _draw_float_range,
    float: _same_float,
}
"""How a field a signal kind's Config adds is drawn per agent, by its type."""


class SignalKind(typing.NamedTuple):
    """What ``signal_kind`` returns: the parts of the kind contract it implements."""

    Params: type
    make_params: Callable
    initial_holdings: Callable
    decide: Callable


def signal_kind(
    config: type,
    signal: Callable[[Seen, typing.Any], jax.Array],
    sizing: Callable[[jax.Array, Trade, jax.Array], jax.Array],
    check: Callable[[typing.Any, int], None] | None = None,
) -> SignalKind:
    """``Params``, ``make_params``, ``initial_holdings`` and ``decide`` of a signal kind
    whose ``Config`` is ``config`` (a ``TradeConfig``): see the module docstring.

    ``check(cfg, n_symbols)``, when given, runs before anything is drawn. Decisions: 2
    rows per agent (``trade_rows``), so the kind's ``ROWS_PER_AGENT`` is 2.
    """
    hints = typing.get_type_hints(config)
    own = [f.name for f in dataclasses.fields(config) if f.name not in TRADE_FIELDS]
    unknown = {name: hints[name] for name in own if hints[name] not in DRAWS}
    if unknown:
        raise TypeError(f"{config.__module__}.Config: per-agent fields must be one of "
                        f"list[int], list[float], float; got {unknown}")
    params = struct.dataclass(type("Params", (), {
        "__module__": config.__module__,
        "__qualname__": "Params",
        "__doc__": f"Per-agent parameters: ``trade`` limits and {', '.join(own)}, each [M].",
        "__annotations__": {"trade": Trade, **{name: jax.Array for name in own}},
    }))

    def make_params(cfg, count: int, rng: np.random.Generator, n_symbols: int):
        """Draw each agent's limits, then its own parameters in field order."""
        if check is not None:
            check(cfg, n_symbols)
        trade = make_trade(cfg, count, rng, n_symbols)
        drawn = {name: DRAWS[hints[name]](rng, getattr(cfg, name), count) for name in own}
        return params(trade=trade, **drawn)

    def initial_holdings(cfg, p, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
        """Cash i64[M] units and positions i64[M, S] shares at the start of a run."""
        return trade_holdings(cfg, p.trade, n_symbols)

    def decide(
        static: WorldStatic, kind: KindStatic, world: WorldParams, p, state: WorldState, frame: Frame, key: jax.Array
    ) -> OrderBatch:
        """Returns 2 rows per agent (cancel, IOC), ``count * 2`` rows."""
        del key  # deterministic given the market
        rows = kind.start + jnp.arange(kind.count)
        position = state.wallet.position[rows, p.trade.symbol]
        s = signal(Seen(frame.indicators, p.trade.symbol), p)
        want = sizing(s, p.trade, position)
        return trade_rows(static, kind, world, p.trade, state, frame, want)

    return SignalKind(params, make_params, initial_holdings, decide)
