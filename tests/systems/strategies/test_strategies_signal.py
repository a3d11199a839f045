"""Signal strategies (RSI, SMA crossover, MACD crossover, Bollinger reversion).

Crafted indicator states: a small world of one kind, bars fed with ``update_indicators``,
then the kind's ``decide`` on the read phase's frame. Then a short world run per kind
among noise traders and market makers, under the conservation invariants.
"""

import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.agents import SLOTS
from components.frame import Frame
from components.indicators import IndicatorSpec
from components.money import SCALE
from components.orders import OrderType, Reason, Side
from components.schema import setting
from qtg.core.config import ConfigError
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder
from systems import strategies
from systems.admission import admit_orders
from systems.indicators import read_indicators, update_indicators
from systems.observe import observe_market
from systems.strategies import bollinger, macd, momentum, trend
from systems.strategies._signal import (
    TradeConfig,
    by_size,
    column,
    period_range,
    signal_kind,
    vote,
)
from tests.support import InvariantCheck, make_config

KEY = jax.random.key(0)
PRICE = 100.0  # opening price, currency
TICK = 100  # units (0.01)
COLLAR = 0.02


def ramp(n, step, start=PRICE):
    return [start + step * i for i in range(n)]


def accelerate(n, a):
    return [PRICE + a * i * i for i in range(n)]


# kind -> module, config changes, a bar path that says buy, one that says sell, one too
# short for the indicator to be ready.
CASES = {
    "momentum": (momentum, {}, ramp(20, -0.5), ramp(20, 0.5), ramp(14, -0.5)),
    "trend_follower": (
        trend,
        {"fast": [5, 5], "slow": [20, 20]},
        ramp(25, 0.2),
        ramp(25, -0.2),
        ramp(19, 0.2),
    ),
    "macd_cross": (macd, {}, accelerate(40, 0.01), accelerate(40, -0.01), accelerate(33, 0.01)),
    "bollinger_reversion": (
        bollinger,
        {},
        [PRICE] * 19 + [95.0],
        [PRICE] * 19 + [105.0],
        [PRICE] * 18 + [95.0],
    ),
}
KINDS = list(CASES)


def world_of(name, **changes):
    """A world of 3 agents of kind ``name`` only, on one symbol."""
    mod, cfg, *_ = CASES[name]
    keys = {"population.noise.count": 0, "population.market_maker.count": 0, "market.symbols": ["ACME"]}
    keys[f"population.{name}.count"] = 3
    keys.update({f"population.{name}.{k}": v for k, v in {**cfg, **changes}.items()})
    return mod, build_world(make_config(**keys))


def fed(world, closes):
    """The world state after absorbing one bar per close (every symbol alike)."""
    spec, state = world.static.indicators, world.state
    ind = state.indicators
    for c in closes:
        bar = jnp.full(world.static.n_symbols, c, jnp.float64)
        ind = update_indicators(spec, ind, bar, bar, bar)
    return state.replace(indicators=ind, tick=jnp.asarray(len(closes), jnp.int64))


def with_holdings(state, rows, cash=None, shares=None):
    w = state.wallet
    if cash is not None:
        w = w.replace(cash=w.cash.at[rows].set(jnp.asarray(cash, jnp.int64)))
    if shares is not None:
        w = w.replace(position=w.position.at[rows, 0].set(jnp.asarray(shares, jnp.int64)))
    return state.replace(wallet=w)


def with_resting_buy(state, agent, price, remaining):
    s = state.slots
    return state.replace(
        slots=s.replace(
            id=s.id.at[agent, Side.BUY].set(agent * SLOTS + Side.BUY),
            price=s.price.at[agent, Side.BUY].set(price),
            remaining=s.remaining.at[agent, Side.BUY].set(remaining),
            symbol=s.symbol.at[agent, Side.BUY].set(0),
        )
    )


def decide(mod, world, state, name, jit=False):
    """(orders as NumPy, frame) of the kind's decide on ``state``."""
    frame = observe_market(world.static, world.params, state, Frame(), KEY)[1]
    kind = world.static.kind(name)
    fn = jax.jit(mod.decide, static_argnums=(0, 1)) if jit else mod.decide
    o = fn(world.static, kind, world.params, world.params.kinds[name], state, frame, KEY)
    return jax.tree.map(np.asarray, o), frame


def iocs(o):
    """The IOC rows (odd rows: each agent writes cancel, IOC)."""
    return jax.tree.map(lambda x: x[1::2], o)


def limits(world, name):
    t = world.params.kinds[name].trade
    return np.asarray(t.size), np.asarray(t.max_position)


def assert_affordable(world, state, o, frame):
    """The pre-trade checks accept every row; prices are on the tick grid."""
    f = Frame(view=frame.view, orders=jax.tree.map(jnp.asarray, o))
    _, f = admit_orders(world.static, world.params, state, f, KEY)
    reasons = np.asarray(f.reject_reason)
    assert not np.isin(reasons, [Reason.INSUFFICIENT_CASH, Reason.INSUFFICIENT_SHARES]).any()
    assert (np.asarray(f.orders.valid) == o.valid).all()
    new = iocs(o)
    assert (new.price[new.valid] % TICK == 0).all() and (new.price[new.valid] > 0).all()


@pytest.mark.parametrize("name", KINDS)
def test_buys_on_the_buy_signal(name):
    mod, world = world_of(name)
    state = fed(world, CASES[name][2])
    o, frame = decide(mod, world, state, name)
    size, max_pos = limits(world, name)
    new = iocs(o)
    assert new.valid.all() and not o.valid[0::2].any()  # no resting order to cancel
    assert (new.kind == OrderType.IOC).all() and (new.side == Side.BUY).all()
    assert (new.qty == np.minimum(size, max_pos)).all()
    assert (new.price == int(np.ceil(PRICE * (1 + COLLAR) * SCALE / TICK)) * TICK).all()
    assert_affordable(world, state, o, frame)
    # The same under jit.
    oj, _ = decide(mod, world, state, name, jit=True)
    for a, b in zip(jax.tree.leaves(o), jax.tree.leaves(oj)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", KINDS)
def test_sells_on_the_sell_signal_only_shares_it_has(name):
    mod, world = world_of(name)
    state = with_holdings(fed(world, CASES[name][3]), jnp.arange(3), shares=[7, 0, 10_000])
    o, frame = decide(mod, world, state, name)
    size, _ = limits(world, name)
    new = iocs(o)
    assert new.valid.tolist() == [True, False, True]
    assert (new.side[new.valid] == Side.SELL).all()
    assert new.qty[0] == 7 and new.qty[2] == size[2]  # all it has; a slice of a large holding
    floor = int(np.floor(PRICE * (1 - COLLAR) * SCALE / TICK)) * TICK
    assert (new.price[new.valid] == floor).all()
    assert_affordable(world, state, o, frame)


@pytest.mark.parametrize("name", KINDS)
def test_idle_until_the_indicator_is_ready(name):
    mod, world = world_of(name)
    _, _, buy, sell, short = CASES[name]
    state = with_holdings(fed(world, short), jnp.arange(3), shares=[100, 100, 100])
    o, frame = decide(mod, world, state, name)
    assert not o.valid.any()
    # One more bar of the same path makes it ready (the short path is the buy path's start
    # or, for the bands, a path whose next bar reaches the band).
    longer = fed(world, buy[: len(short) + 1] if name != "bollinger_reversion" else [PRICE] + short)
    assert decide(mod, world, longer, name)[0].valid.any()


@pytest.mark.parametrize("name", KINDS)
def test_idle_on_a_flat_market(name):
    """RSI 50, equal averages, equal MACD lines, zero-width bands: no signal either way."""
    mod, world = world_of(name)
    state = with_holdings(fed(world, [PRICE] * 40), jnp.arange(3), shares=[100, 100, 100])
    assert not decide(mod, world, state, name)[0].valid.any()


@pytest.mark.parametrize("name", KINDS)
def test_buys_stop_at_max_position_and_cash(name):
    mod, world = world_of(name, size=[50, 50])
    state = fed(world, CASES[name][2])
    _, max_pos = limits(world, name)
    buy_price = int(np.ceil(PRICE * (1 + COLLAR) * SCALE / TICK)) * TICK
    # Agent 0: 3 shares under its limit. Agent 1: cash for 2 shares. Agent 2: a resting
    # buy of 1 share reserves all but 1 share's worth of cash.
    cash = np.asarray(state.wallet.cash)
    state = with_holdings(state, jnp.arange(2), cash=[cash[0], 2 * buy_price + 5], shares=[max_pos[0] - 3, 0])
    state = with_resting_buy(state, 2, int(cash[2]) - buy_price, 1)
    o, frame = decide(mod, world, state, name)
    new = iocs(o)
    assert new.valid.all() and (new.side == Side.BUY).all()
    assert new.qty.tolist() == [3, 2, 1]
    assert o.valid[0::2].tolist() == [False, False, True]  # the resting buy is cancelled
    assert o.kind[4] == OrderType.CANCEL and o.id[4] == 2 * SLOTS + Side.BUY
    position = np.asarray(state.wallet.position)[:, 0]
    assert (position + new.qty + [0, 0, 1] <= max_pos).all()  # the resting buy counts too
    assert_affordable(world, state, o, frame)
    # At the limit, or with no cash: nothing.
    full = with_holdings(state, jnp.arange(3), cash=[cash[0], 0, cash[2]], shares=max_pos.tolist())
    assert not iocs(decide(mod, world, full, name)[0]).valid.any()


def test_rules_read_their_indicator():
    """The crafted paths say what the tests above assume, read from the indicators."""
    reads = {}
    for name, (mod, _, buy, sell, _) in CASES.items():
        _, world = world_of(name)
        spec = world.static.indicators
        reads[name] = [read_indicators(spec, fed(world, path).indicators) for path in (buy, sell)]
    (b, s) = reads["momentum"]
    assert float(b.rsi.value[0, 0]) < 25 and float(s.rsi.value[0, 0]) > 75
    (b, s) = reads["trend_follower"]
    assert b.sma.value[0, 0] > b.sma.value[0, 1] and s.sma.value[0, 0] < s.sma.value[0, 1]
    (b, s) = reads["macd_cross"]
    assert b.macd.line[0, 0] > b.macd.signal[0, 0] and s.macd.line[0, 0] < s.macd.signal[0, 0]
    (b, s) = reads["bollinger_reversion"]
    assert b.bollinger.percent_b[0, 0] < 0 and s.bollinger.percent_b[0, 0] > 1


def test_column_matches_period_sets():
    assert np.asarray(column((5, 10, 20), jnp.array([20, 5, 10]))).tolist() == [2, 0, 1]
    table = ((12, 26, 9), (12, 30, 9), (15, 26, 9))
    key = jnp.array([[15, 26, 9], [12, 30, 9]])
    assert np.asarray(column(table, key)).tolist() == [2, 1]
    assert np.asarray(column(((20, 2.0), (20, 2.5)), jnp.array([[20, 2.5]]))).tolist() == [1]


def test_period_ranges_draw_within_the_spec():
    mod, world = world_of("trend_follower", fast=[3, 6], slow=[10, 12])
    p = world.params.kinds["trend_follower"]
    assert world.static.indicators.sma == (3, 4, 5, 6, 10, 11, 12)
    assert set(np.asarray(p.fast).tolist()) <= {3, 4, 5, 6}
    assert set(np.asarray(p.slow).tolist()) <= {10, 11, 12}
    with pytest.raises(ValueError, match="fast period must be < every slow"):
        world_of("trend_follower", fast=[5, 10], slow=[10, 20])


class PositionLog:
    """A hook keeping each tick's positions of one kind's agents."""

    def __init__(self, name):
        self.name, self.positions = name, []

    def on_start(self, sim):
        k = sim.static.kind(self.name)
        self.rows = slice(k.start, k.stop)

    def on_tick(self, sim, r):
        self.positions.append(np.asarray(sim.state.wallet.position)[self.rows, 0])

    def on_end(self, sim):
        pass


@pytest.mark.parametrize("name", KINDS)
def test_world_run_keeps_invariants(name):
    mod, cfg, *_ = CASES[name]
    # One symbol, prices free of the fair-value anchor (a random walk the signals can trade).
    keys = {f"population.{name}.count": 4, "hooks": [], "market.symbols": ["ACME"],
            "population.market_maker.count": 2, "population.noise.count": 10,
            "population.market_maker.anchor": [0.0, 0.0], "population.noise.anchor": [0.0, 0.0],
            "population.noise.vol_feedback": 0.0, "population.noise.max_short": 0}
    # Momentum with thresholds near 50 and shares to sell, bands of one standard deviation,
    # so a short run trades either way.
    busy = {"momentum": {"oversold": [40.0, 45.0], "overbought": [55.0, 60.0], "shares": 100},
            "bollinger_reversion": {"k": 1.0}}.get(name, {})
    keys.update({f"population.{name}.{k}": v for k, v in {**cfg, **busy}.items()})
    config = make_config(**keys)
    world = build_world(config)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(config, world.static))
    rec, check, log = Recorder(), InvariantCheck(), PositionLog(name)
    sim.run(150, hooks=[rec, check, log])
    assert check.ticks == 150
    positions = np.stack(log.positions)  # [T, 4]
    _, max_pos = limits(world, name)
    assert (positions >= 0).all() and (positions <= max_pos).all()
    assert (np.diff(positions, axis=0) != 0).any()  # the kind traded
    assert rec.rejects[Reason.INSUFFICIENT_CASH] == 0 and rec.rejects[Reason.INSUFFICIENT_SHARES] == 0


def ema_cross_kind():
    """The EMA crossover of the ``systems.strategies`` docstring, declared here as a new kind."""
    kind = types.ModuleType("ema_cross")

    @dataclasses.dataclass
    class Config(TradeConfig):
        fast: list[int] = setting([3, 5], lo=1, doc="Range of fast EMA periods in bars.")
        slow: list[int] = setting([10, 20], lo=2, doc="Range of slow EMA periods in bars.")

    def indicators(cfg):
        return IndicatorSpec(ema=period_range(cfg.fast) + period_range(cfg.slow))

    def signal(seen, p):
        fast, slow = seen.ema(p.fast), seen.ema(p.slow)
        return vote(fast.value > slow.value, fast.value < slow.value, fast.ready & slow.ready)

    kind.KIND, kind.ROWS_PER_AGENT, kind.Config, kind.indicators = "ema_cross", 2, Config, indicators
    kind.Params, kind.make_params, kind.initial_holdings, kind.decide = signal_kind(Config, signal, by_size)
    return kind


def test_a_new_signal_kind_declared_with_the_helper_builds_and_trades(monkeypatch):
    """The kind contract end to end: a kind declared in a few lines with ``signal_kind``
    and registered is configured, laid out, given its indicators, and trades in a small
    world under the conservation invariants, long only and within its limits."""
    monkeypatch.setattr(strategies, "PLUGINS", {})
    kind = ema_cross_kind()
    strategies.register(kind)
    assert strategies.registry()["ema_cross"] is kind
    with pytest.raises(ValueError, match="already registered"):
        strategies.register(types.SimpleNamespace(KIND="momentum"))

    keys = {"population.ema_cross.count": 4, "population.ema_cross.shares": 100, "hooks": [],
            "market.symbols": ["ACME"], "population.market_maker.count": 2, "population.noise.count": 10,
            "population.market_maker.anchor": [0.0, 0.0], "population.noise.anchor": [0.0, 0.0],
            "population.noise.vol_feedback": 0.0, "population.noise.max_short": 0}
    config = make_config(**keys)
    assert config.population["ema_cross"].slow == [10, 20]  # the Config's defaults fill the entry
    world = build_world(config)
    p = world.params.kinds["ema_cross"]
    assert isinstance(p, kind.Params) and p.fast.dtype == jnp.int32
    assert set(np.asarray(p.fast).tolist()) <= {3, 4, 5} and set(np.asarray(p.slow).tolist()) <= set(range(10, 21))
    assert world.static.indicators.ema == tuple(range(3, 6)) + tuple(range(10, 21))
    k = world.static.kind("ema_cross")
    assert (k.count, k.rows_per_agent) == (4, 2)

    sim = Simulation(world.static, world.params, world.state, make_engine_for(config, world.static))
    rec, check, log = Recorder(), InvariantCheck(), PositionLog("ema_cross")
    sim.run(150, hooks=[rec, check, log])
    assert check.ticks == 150
    positions = np.stack(log.positions)  # [T, 4]
    assert (positions >= 0).all() and (positions <= np.asarray(p.trade.max_position)).all()
    assert (np.diff(positions, axis=0) != 0).any()  # the kind traded
    assert rec.rejects[Reason.INSUFFICIENT_CASH] == 0 and rec.rejects[Reason.INSUFFICIENT_SHARES] == 0

    # A bad entry stops at the config, naming the key; an undrawable field at declaration.
    with pytest.raises(ConfigError, match="population.ema_cross.fast"):
        make_config(**{**keys, "population.ema_cross.fast": [0, 3]})

    @dataclasses.dataclass
    class Wordy(TradeConfig):
        mode: str = "fast"

    with pytest.raises(TypeError, match="per-agent fields"):
        signal_kind(Wordy, lambda seen, p: 0, by_size)
