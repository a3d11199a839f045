"""Noise traders: role switching, the sides each role leans to, Pareto order sizes and
where passive orders rest, each against its formula over many traders (binomial bounds)."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from components.frame import Frame
from components.money import SCALE
from components.orders import OrderType, Side
from qtg.core.world import build_world
from systems.observe import observe_market
from systems.strategies import noise
from tests.support import make_config

PRICE = 100.0 * SCALE  # units
TREND = 20  # the chartists' EMA period
N = 20_000  # traders per test: binomial bounds of a few tenths of a percent

# Everyone acts; rich enough that no size is capped by cash or shares.
ACTIVE = {"activity": [1.0, 1.0], "vol_feedback": 0.0, "chartist_activity": 1.0, "cash": 10_000_000.0,
          "shares": 1_000, "max_short": 0, "trend_period": TREND}


def world_of(symbols=("ACME",), count=N, **changes):
    keys = {"population.market_maker.count": 0, "market.symbols": list(symbols), "population.noise.count": count,
            "market.shares_outstanding": 10**8}
    keys.update({f"population.noise.{k}": v for k, v in {**ACTIVE, **changes}.items()})
    return build_world(make_config(**keys))


def with_roles(world, chartist):
    state = world.state
    return state.replace(kinds={**state.kinds, "noise": state.kinds["noise"].replace(chartist=jnp.asarray(chartist))})


def frame_of(world, state, fair=PRICE, ema=None, bid=0, ask=0):
    """The read phase's frame with the fair value and the book (units) and the chartists'
    EMA (currency, as the indicators are) set."""
    s = world.static.n_symbols
    frame = observe_market(world.static, world.params, state, Frame(), jax.random.key(0))[1]
    view = frame.view
    if bid or ask:
        m = state.market
        state = state.replace(market=m.replace(bid=jnp.full(s, bid), ask=jnp.full(s, ask)))
        view = observe_market(world.static, world.params, state, Frame(), jax.random.key(0))[1].view
    view = view.replace(fair=jnp.broadcast_to(jnp.asarray(fair, jnp.float64), (s,)))
    ind = frame.indicators
    if ema is not None:
        ema_value = jnp.broadcast_to(jnp.asarray(ema, jnp.float64), (s,))[:, None]
        ind = ind.replace(ema=ind.ema.replace(value=ema_value, ready=jnp.ones((s, 1), bool)))
    return state, frame.replace(view=view, indicators=ind)


def decide(world, state, frame, seed=1):
    kind = world.static.kind("noise")
    orders, new = noise.decide(world.static, kind, world.params, world.params.kinds["noise"], state, frame,
                               jax.random.key(seed))
    new_orders = jax.tree.map(lambda x: np.asarray(x)[1::2], orders)  # rows: cancel, new order
    return new_orders, np.asarray(new.chartist)


def within(observed: float, p: float, n: int, z: float = 5.0) -> bool:
    return abs(observed - p) <= z * math.sqrt(p * (1 - p) / n) + 1e-12


def test_the_starting_share_of_chartists_per_symbol():
    world = world_of(symbols=("A", "B", "C"), count=30, chartists=0.4)
    roles = np.asarray(world.state.kinds["noise"].chartist)
    sym = np.asarray(world.params.kinds["noise"].symbol)
    assert [int(roles[sym == s].sum()) for s in range(3)] == [4, 4, 4]


def test_switching_probabilities_follow_the_herding_and_misalignment_formula():
    # Two symbols: A with 25% chartists, fair value 0.5% above the price; B with 75%, at fair.
    world = world_of(symbols=("A", "B"), switching=0.05, herding=1.5, predisposition=0.2, misalignment=2.0)
    sym = np.asarray(world.params.kinds["noise"].symbol)
    rank = np.arange(N) // 2
    chartist = np.where(sym == 0, rank < N // 8, rank < 3 * N // 8)
    state, frame = frame_of(world, with_roles(world, chartist), fair=jnp.array([PRICE * 1.005, PRICE]))
    _, after = decide(world, state, frame)
    for s, share, gap in ((0, 0.25, math.log(1 / 1.005)), (1, 0.75, 0.0)):
        worth = 0.2 + 1.5 * (1 - 2 * share) + 2.0 * (100 * gap) ** 2
        for was, p in ((True, min(1, 0.05 * math.exp(worth))), (False, min(1, 0.05 * math.exp(-worth)))):
            group = (sym == s) & (chartist == was)
            flipped = (after[group] != was).mean()
            assert within(flipped, p, int(group.sum())), (s, was, flipped, p)
    # No switching: nobody changes role.
    still = world_of(switching=0.0)
    state, frame = frame_of(still, still.state)
    np.testing.assert_array_equal(decide(still, state, frame)[1], np.asarray(still.state.kinds["noise"].chartist))


def test_fundamentalists_lean_toward_fair_value_and_chartists_follow_the_trend():
    world = world_of(value_weight=50.0, trend_weight=80.0, aggressive=[1.0, 1.0], chartist_aggressive=1.0)
    chartist = np.arange(N) % 2 == 1
    fair, ema = PRICE * 1.01, PRICE / 1.004 / SCALE  # value gap log 1.01; trend log 1.004
    state, frame = frame_of(world, with_roles(world, chartist), fair=fair, ema=ema)
    o, _ = decide(world, state, frame)
    buy = o.side == Side.BUY
    assert o.valid.all() and (o.kind == OrderType.IOC).all()
    p_value = 0.5 * (1 + math.tanh(50.0 * math.log(1.01)))
    p_trend = 0.5 * (1 + math.tanh(80.0 * math.log(1.004)))
    assert within(buy[~chartist].mean(), p_value, N // 2)
    assert within(buy[chartist].mean(), p_trend, N // 2)
    # With neither lean, a fair coin.
    state, frame = frame_of(world, with_roles(world, chartist), fair=PRICE, ema=PRICE / SCALE)
    assert within((decide(world, state, frame)[0].side == Side.BUY).mean(), 0.5, N)


def test_order_sizes_are_pareto_from_the_minimum_and_capped():
    world = world_of(size=[10, 300], size_tail=1.5, chartist_size=3.0, aggressive=[1.0, 1.0], chartist_aggressive=1.0)
    chartist = np.arange(N) % 4 == 0
    state, frame = frame_of(world, with_roles(world, chartist))
    o, _ = decide(world, state, frame)
    fund = o.qty[~chartist]
    assert fund.min() == 10 and fund.max() == 300
    for x in (20, 50, 100, 200):  # P(size >= x) = (10 / x) ** 1.5 below the cap
        assert within((fund >= x).mean(), (10 / x) ** 1.5, fund.size), x
    assert within((fund == 300).mean(), (10 / 300) ** 1.5, fund.size)  # the cap holds the tail
    chart = o.qty[chartist]  # three times the size
    assert chart.min() == 30 and chart.max() == 900 and within((chart >= 150).mean(), (10 / 50) ** 1.5, chart.size)
    # size_tail 0: uniform on the range.
    flat = world_of(size=[1, 100], size_tail=0.0, chartists=0.0, aggressive=[1.0, 1.0])
    state, frame = frame_of(flat, flat.state)
    q = decide(flat, state, frame)[0].qty
    assert q.min() == 1 and q.max() == 100 and within((q <= 50).mean(), 0.5, N)


def test_passive_orders_rest_behind_the_best_quotes_on_their_own_side():
    world = world_of(aggressive=[0.0, 0.0], chartist_aggressive=0.0, price_sigma=[0.002, 0.002], anchor=[0.0, 0.0])
    bid, ask = PRICE - 300, PRICE + 300  # mid 100.00, spread 6 ticks
    state, frame = frame_of(world, world.state, bid=bid, ask=ask)
    o, _ = decide(world, state, frame)
    buy = o.side == Side.BUY
    assert (o.kind == OrderType.LIMIT).all()
    assert (o.price[buy] <= bid).all() and (o.price[~buy] >= ask).all()
    # ... at the centre less or plus price_sigma * |z|, floored (buys) or ceiled (sells) to
    # the tick: |z| <= 3.46, so none is further than 0.7% away, and many sit deeper than the touch.
    assert (o.price[buy] >= PRICE * (1 - 0.002 * 3.47)).all() and (o.price[~buy] <= PRICE * (1 + 0.002 * 3.47)).all()
    assert (o.price[buy] < bid).mean() > 0.5 and (o.price[~buy] > ask).mean() > 0.5


def test_traders_lean_back_toward_their_starting_holding():
    world = world_of(rebalance=0.5, value_weight=0.0, trend_weight=0.0, aggressive=[1.0, 1.0],
                     chartist_aggressive=1.0, chartists=0.0)
    rows = np.arange(world.static.kind("noise").start, world.static.kind("noise").start + N)
    # Half hold twice their starting 1,000 shares, half none: they lean to sell and to buy.
    held = np.where(np.arange(N) % 2 == 0, 2000, 0)
    pos = world.state.wallet.position.at[rows, 0].set(jnp.asarray(held))
    state = world.state.replace(wallet=world.state.wallet.replace(position=pos))
    state, frame = frame_of(world, state)
    o, _ = decide(world, state, frame)
    buy = o.side == Side.BUY
    assert within(buy[held == 2000].mean(), 0.5 * (1 + math.tanh(-0.5)), N // 2)
    assert within(buy[held == 0].mean(), 0.5 * (1 + math.tanh(0.5)), N // 2)
