"""VWAP executors: each works one parent order along a volume profile over its horizon.

An executor has a side (buy or sell), a total size ``total`` (shares), a start tick
``start`` and a horizon ``horizon`` (ticks): it trades in ticks ``start .. start +
horizon - 1``. Its cumulative target after trading in tick ``t`` is::

    target(t) = floor(total * F((t + 1 - start) / horizon)),   F(1) = 1 (target = total)

with ``F`` the cumulative volume profile on [0, 1]:

* ``flat``: ``F(x) = x`` (constant volume per tick). Computed in integers,
  ``target = total * (t + 1 - start) // horizon``, so it is exact.
* ``u_shape``: volume density ``f(x) = 1/2 + 3/2 * (2x - 1)^2`` (4x more volume at the
  open and close of the horizon than at its middle; integrates to 1), so
  ``F(x) = x / 2 + ((2x - 1)^3 + 1) / 4``. Floored after adding 1e-9 so float error
  cannot drop a share where the exact product is a whole number.

Each tick inside the horizon the child order is the shortfall ``target(t) - executed``,
capped by ``max_child`` and by the cash or shares not reserved by resting orders, sent as
an immediate-or-cancel order priced ``collar`` through the reference (it takes liquidity
and walks the book; what does not fill is dropped and the shortfall carries to the next
tick). In the last tick of the horizon the target is the whole parent order, so the
executor tries to finish any remainder there (still capped by ``max_child``). Before
``start`` and after the horizon it sends nothing.

The system is stateless across ticks: ``executed = position - initial_position`` in its
symbol (signed by side, at least 0), where ``initial_position`` is a parameter (its
starting holding). ``execution_report`` summarises the runs of all executors on the host.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from components.frame import Frame
from components.money import SCALE, to_fixed
from components.orders import OrderBatch
from components.schema import setting
from components.world import KindStatic, WorldParams, WorldState, WorldStatic
from systems.strategies._rows import (
    affordable,
    cancel_resting,
    collar_price,
    interleave,
    ioc_rows,
)

KIND = "vwap_executor"
ROWS_PER_AGENT = 2  # cancel of any resting order, child order

PROFILES = {"flat": 0, "u_shape": 1}
"""Volume profile name -> the code stored in ``Params.profile``."""


@dataclasses.dataclass
class Config:
    count: int = setting(0)
    buy_fraction: float = setting(0.5, hi=1.0, doc=(
        "Probability that an executor's parent order is a buy (else a sell)."))
    total: list[int] = setting([500, 2_000], lo=1, doc="Range of the parent order size, in shares.")
    start: list[int] = setting([1, 50], lo=1, doc=(
        "Range of the first tick of execution (tick 0 is the opening: no trading)."))
    horizon: list[int] = setting([100, 300], lo=1, doc="Range of the execution horizon, in ticks.")
    max_child: list[int] = setting([50, 200], lo=1, doc="Range of the largest child order, in shares.")
    collar: float = setting(0.02, hi=0.5, doc=(
        "How far through the reference a child order may reach (fraction)."))
    profile: str = setting("flat", lo=None, doc=(
        "Cumulative volume profile: flat or u_shape (see the module docstring)."))
    cash: float = setting(500_000.0, doc=(
        "Starting cash per executor, in currency; a buyer's must cover its parent order at up to ``(1"
        ' + collar)`` times the price, or it completes only what it can pay for.'))
    shares: int = setting(0, doc=(
        "Starting shares per executor in its symbol; a seller also holds its ``total``."))


@struct.dataclass
class Params:
    symbol: jax.Array  # i32[M]
    buy: jax.Array  # bool[M] parent order side: True buys, False sells
    total: jax.Array  # i64[M] shares of the parent order
    start: jax.Array  # i64[M] first tick of execution
    horizon: jax.Array  # i64[M] ticks
    max_child: jax.Array  # i64[M] shares
    collar: jax.Array  # f64[M] fraction
    profile: jax.Array  # i32[M] PROFILES code
    initial_position: jax.Array  # i64[M] shares of its symbol held at the start of the run


def check(cfg: Config, n_symbols: int) -> None:
    """The profile is one of PROFILES."""
    if cfg.profile not in PROFILES:
        raise ValueError(
            f"population.{KIND}.profile: unknown profile '{cfg.profile}'; "
            f"allowed: {', '.join(PROFILES)}"
        )


def make_params(cfg: Config, count: int, rng: np.random.Generator, n_symbols: int) -> Params:
    """Draw each executor's parent order; symbols are assigned round-robin.

    Raises ValueError for an unknown ``cfg.profile``.
    """
    check(cfg, n_symbols)

    def ints(r: list[int]) -> jax.Array:
        return jnp.asarray(rng.integers(r[0], r[1] + 1, count), jnp.int64)

    buy = rng.random(count) < cfg.buy_fraction
    total = ints(cfg.total)
    return Params(
        symbol=jnp.asarray(np.arange(count) % n_symbols, jnp.int32),
        buy=jnp.asarray(buy),
        total=total,
        start=ints(cfg.start),
        horizon=ints(cfg.horizon),
        max_child=ints(cfg.max_child),
        collar=jnp.full(count, cfg.collar, jnp.float64),
        profile=jnp.full(count, PROFILES[cfg.profile], jnp.int32),
        initial_position=cfg.shares + jnp.where(jnp.asarray(buy), 0, total),
    )


def initial_holdings(cfg: Config, params: Params, n_symbols: int) -> tuple[np.ndarray, np.ndarray]:
    """Cash i64[M] units (``cfg.cash`` each) and positions i64[M, S] shares: each holds
    ``initial_position`` of its own symbol (a seller's includes its whole parent order)."""
    symbol = np.asarray(params.symbol)
    m = symbol.shape[0]
    position = np.zeros((m, n_symbols), np.int64)
    position[np.arange(m), symbol] = np.asarray(params.initial_position)
    return np.full(m, to_fixed(cfg.cash), np.int64), position


def target_executed(p: Params, tick: jax.Array) -> jax.Array:
    """Cumulative shares the executors aim to have done after trading in ``tick``. i64[M]

    0 before ``start``, ``total`` from the last tick of the horizon on.
    """
    done = jnp.clip(tick + 1 - p.start, 0, p.horizon)  # ticks of the horizon done after this one
    flat = p.total * done // p.horizon
    x = done / p.horizon
    u = x / 2.0 + ((2.0 * x - 1.0) ** 3 + 1.0) / 4.0
    u_shape = jnp.floor(p.total * u + 1e-9).astype(jnp.int64)
    target = jnp.where(p.profile == PROFILES["u_shape"], u_shape, flat)
    return jnp.clip(jnp.where(done >= p.horizon, p.total, target), 0, p.total)


def executed(p: Params, position: jax.Array) -> jax.Array:
    """Shares of the parent order done so far, from the position in its symbol. i64[M]"""
    moved = position - p.initial_position
    return jnp.maximum(jnp.where(p.buy, moved, -moved), 0)


def decide(
    static: WorldStatic, kind: KindStatic, world: WorldParams, p: Params, state: WorldState, frame: Frame, key: jax.Array
) -> OrderBatch:
    """Returns 2 rows per executor (cancel, child IOC order), ``count * 2`` rows."""
    del key  # executors are deterministic given the market
    n = kind.count
    rows = kind.start + jnp.arange(n)
    sym = p.symbol
    tick = world.tick_size[sym]
    ref = frame.view.ref[sym]
    now = state.tick

    in_horizon = (now >= p.start) & (now < p.start + p.horizon)
    done = executed(p, state.wallet.position[rows, sym])
    shortfall = jnp.maximum(target_executed(p, now) - done, 0)

    price = collar_price(p.buy, ref, p.collar, tick)
    qty = jnp.where(in_horizon, jnp.minimum(jnp.minimum(shortfall, p.max_child), affordable(state, rows, sym, p.buy, price)), 0)
    child = ioc_rows(static.n_agents, now, rows, sym, p.buy, price, qty, qty > 0)

    # IOC children never rest, but an executor may start with a resting order: cancel it.
    cancel = cancel_resting(state, rows)
    return interleave(cancel, child)


def _summary(buy: np.ndarray, target: np.ndarray, done: np.ndarray, spent: np.ndarray,
             market_notional: np.ndarray) -> dict:
    """Totals of a group of executors; VWAPs and slippage are quantity-weighted."""
    t, e = int(target.sum()), int(done.sum())
    value = float(np.abs(spent).sum()) / SCALE  # currency
    bench = float(market_notional.sum())  # currency: market VWAP x executed shares
    slip = None
    if e > 0 and bench > 0:
        # Per-agent slippage weighted by each agent's benchmark notional, so buys and sells
        # (whose slippage signs are opposite) aggregate as costs.
        sign = np.where(buy, 1.0, -1.0)
        per = np.where(market_notional > 0, sign * (np.abs(spent) / SCALE - market_notional), 0.0)
        slip = float(per.sum() / bench * 1e4)
    return {
        "count": int(target.size),
        "target": t,
        "executed": e,
        "completion": e / t if t else None,
        "notional": value,
        "slippage_bps": slip,
    }


def execution_report(
    params: Params,
    initial_cash: np.ndarray,
    cash: np.ndarray,
    position: np.ndarray,
    market_vwap_by_symbol: np.ndarray,
) -> dict:
    """Per-executor and aggregated execution quality, as JSON-able Python values.

    Args (host NumPy or device arrays; M executors of the kind, S symbols):
      params: the kind's Params.
      initial_cash: i64[M] cash at the start of the run, in units (1/10,000 currency).
      cash: i64[M] cash now, in units.
      position: i64[M, S] shares now.
      market_vwap_by_symbol: f64[S] the market VWAP of each symbol over the execution
        period, in currency per share (NaN or <= 0 where the symbol did not trade).

    Returns ``{"agents": [...], "buy": {...}, "sell": {...}, "all": {...}}``. Each agent
    entry has ``side`` ("buy"/"sell"), ``symbol`` (index), ``target`` and ``executed``
    (shares), ``completion`` (executed / target), ``vwap`` (achieved: |cash change| /
    executed, currency per share; None when nothing executed), ``market_vwap`` (currency
    per share) and ``slippage_bps`` (buy: (vwap / market - 1) * 1e4; sell: (1 - vwap /
    market) * 1e4; positive is a cost; None without both VWAPs). Groups add ``count`` and
    ``notional`` (currency) and weight slippage by each executor's market notional.
    """
    p = jax.tree.map(np.asarray, params)
    m = p.symbol.shape[0]
    initial_cash = np.asarray(initial_cash, np.int64)
    cash = np.asarray(cash, np.int64)
    position = np.asarray(position, np.int64)
    market = np.asarray(market_vwap_by_symbol, np.float64)[p.symbol]
    own = position[np.arange(m), p.symbol]
    done = np.maximum(np.where(p.buy, own - p.initial_position, p.initial_position - own), 0)
    spent = cash - initial_cash  # units; negative for a buyer
    market_ok = np.isfinite(market) & (market > 0)
    market_notional = np.where(market_ok & (done > 0), market * done, 0.0)

    agents = []
    for i in range(m):
        e = int(done[i])
        vwap = abs(int(spent[i])) / e / SCALE if e else None
        mkt = float(market[i]) if market_ok[i] else None
        slip = None
        if vwap is not None and mkt is not None:
            slip = (vwap / mkt - 1.0) * 1e4 if p.buy[i] else (1.0 - vwap / mkt) * 1e4
        agents.append({
            "side": "buy" if p.buy[i] else "sell",
            "symbol": int(p.symbol[i]),
            "target": int(p.total[i]),
            "executed": e,
            "completion": e / int(p.total[i]),
            "vwap": vwap,
            "market_vwap": mkt,
            "slippage_bps": slip,
        })
    groups = {"buy": p.buy, "sell": ~p.buy, "all": np.ones(m, bool)}
    report = {"agents": agents}
    for name, g in groups.items():
        report[name] = _summary(p.buy[g], p.total[g], done[g], spent[g], market_notional[g])
    return report
