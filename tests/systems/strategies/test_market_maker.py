"""Market makers: the quote centre (order-flow learning, public news, the pull toward fair
value) and the half-spread (volatility, inventory) against a NumPy reference, exactly."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from components.frame import Frame
from components.money import SCALE
from components.orders import OrderType, Side
from qtg.core.world import build_world
from systems.observe import observe_market
from systems.strategies import market_maker
from tests.support import make_config

KEY = jax.random.key(0)
PRICE = 100.0 * SCALE  # opening price, units
TICK = 100  # units (0.01)
PERIOD = 20

# Fixed parameters (every range a point): base half-spread 2 bp, one unit of relative ATR
# added, no inventory effects unless a test turns them on.
FIXED = {"half_spread": [0.0002, 0.0002], "vol_spread": [1.0, 1.0], "vol_period": PERIOD,
         "inventory_spread": [0.0, 0.0], "skew": [0.0, 0.0], "anchor": [1.0, 1.0],
         "impact": [1e-05, 1e-05], "quote_size": [100, 100], "max_inventory": [1000, 1000],
         "shares": 5000}


def world_of(count=2, anchoring=0.0, **changes):
    """``count`` makers on one symbol, nobody else."""
    keys = {"population.noise.count": 0, "market.symbols": ["ACME"], "market.anchoring": anchoring,
            "population.market_maker.count": count}
    keys.update({f"population.market_maker.{k}": v for k, v in {**FIXED, **changes}.items()})
    return build_world(make_config(**keys))


def frame_of(world, state, fair=PRICE, news=0.0, atr=None):
    """The read phase's frame, with fair value and news (units) and ATR(PERIOD) (currency,
    as the indicators are) set."""
    frame = observe_market(world.static, world.params, state, Frame(), KEY)[1]
    view = frame.view.replace(fair=jnp.array([fair]), news=jnp.array([news]))
    ind = frame.indicators
    if atr is not None:
        ind = ind.replace(atr=ind.atr.replace(value=jnp.array([[atr]]), ready=jnp.array([[True]])))
    return frame.replace(view=view, indicators=ind)


def decide(world, state, frame):
    kind = world.static.kind("market_maker")
    orders, new = market_maker.decide(world.static, kind, world.params, world.params.kinds["market_maker"],
                                      state, frame, KEY)
    return jax.tree.map(np.asarray, orders), jax.tree.map(np.asarray, new)


def quotes(centre, half, shift=0.0):
    """Reference bid and ask (units) for a centre, half-spread (fraction) and shift (units)."""
    bid = math.floor((centre * (1 - half) + shift) / TICK) * TICK
    ask = max(math.ceil((centre * (1 + half) + shift) / TICK) * TICK, bid + TICK)
    return bid, ask


def test_opening_quotes_sit_a_half_spread_around_the_reference():
    world = world_of()
    o, new = decide(world, world.state, frame_of(world, world.state))
    bid, ask = quotes(PRICE, 0.0002)
    assert o.price.tolist() == [bid, ask, bid, ask] and o.qty.tolist() == [100] * 4
    assert o.side.tolist() == [Side.BUY, Side.SELL] * 2 and (o.kind == OrderType.LIMIT).all()
    np.testing.assert_array_equal(new.estimate, [PRICE, PRICE])  # no flow, no news, no pull


def test_the_spread_widens_with_volatility():
    world = world_of()
    calm = decide(world, world.state, frame_of(world, world.state, atr=0.0))[0]
    wild = decide(world, world.state, frame_of(world, world.state, atr=0.004 * PRICE / SCALE))[0]
    assert calm.price[:2].tolist() == list(quotes(PRICE, 0.0002))
    # ATR of 0.4% of the price: half-spread 2 bp + 1.0 * 40 bp
    assert wild.price[:2].tolist() == list(quotes(PRICE, 0.0042))
    assert wild.price[1] - wild.price[0] > 10 * (calm.price[1] - calm.price[0])
    # Without the ATR ready the term is 0.
    assert decide(world, world.state, frame_of(world, world.state))[0].price[:2].tolist() == list(quotes(PRICE, 0.0002))


def test_inventory_widens_the_spread_and_leans_the_quotes():
    world = world_of(inventory_spread=[1.0, 1.0], skew=[0.5, 0.5])
    rows = np.arange(world.static.kind("market_maker").count)
    pos = world.state.wallet.position.at[rows, 0].set(jnp.array([5500, 4000]))  # target 5000, max 1000
    state = world.state.replace(wallet=world.state.wallet.replace(position=pos))
    state = state.replace(kinds={**state.kinds, "market_maker": state.kinds["market_maker"].replace(
        position=jnp.array([5500, 4000]))})  # no fills since the last quote: no learning
    o = decide(world, state, frame_of(world, state))[0]
    # long by half of max: half = 2 bp * (1 + 0.5), shift = -0.5 * half * centre * 0.5
    long_half = 0.0002 * 1.5
    assert o.price[:2].tolist() == list(quotes(PRICE, long_half, -0.5 * long_half * PRICE * 0.5))
    # short by the whole max: half = 2 bp * 2, shift up; past max inventory it stops asking
    short_half = 0.0004
    assert o.price[2].tolist() == quotes(PRICE, short_half, 0.5 * short_half * PRICE)[0]
    assert o.valid.tolist() == [True, True, True, False]


def test_the_estimate_learns_from_the_net_flow_of_the_symbols_makers():
    world = world_of()
    own = world.state.kinds["market_maker"]
    # Since the last quotes, others bought 300 shares from maker 0 and sold 100 to maker 1.
    pos = world.state.wallet.position.at[:2, 0].set(jnp.array([4700, 5100]))
    state = world.state.replace(wallet=world.state.wallet.replace(position=pos),
                                kinds={**world.state.kinds, "market_maker": own.replace(
                                    estimate=jnp.array([PRICE, PRICE + 500.0]))})
    o, new = decide(world, state, frame_of(world, state))
    # Both read the symbol's net 200 shares sold: exp(1e-5 * 200)
    expected = np.array([PRICE, PRICE + 500.0]) * math.exp(1e-05 * 200)
    np.testing.assert_allclose(new.estimate, expected, rtol=1e-15)
    np.testing.assert_array_equal(new.position, [4700, 5100])
    assert o.price[:2].tolist() == list(quotes(expected[0], 0.0002))


def test_public_news_moves_the_estimate_at_once_and_fair_value_pulls_it_slowly():
    fair = 110.0 * SCALE
    world = world_of(anchoring=0.1)
    news = math.log(1.05)
    _, new = decide(world, world.state, frame_of(world, world.state, fair=fair, news=news))
    informed = PRICE * 1.05
    np.testing.assert_allclose(new.estimate, informed + 0.1 * (fair - informed), rtol=1e-15)
    # anchoring 1 with anchor 1: the quotes centre on the fair value itself
    world = world_of(anchoring=1.0)
    _, new = decide(world, world.state, frame_of(world, world.state, fair=fair))
    np.testing.assert_allclose(new.estimate, fair, rtol=1e-15)


def test_a_live_quote_it_cannot_resize_stays_rather_than_being_cancelled():
    world = world_of(count=1, shares=100, max_inventory=[10_000, 10_000])
    o, _ = decide(world, world.state, frame_of(world, world.state))
    # Its live ask of 100 reserves every share it has: a modify would need 100 more.
    slots = world.state.slots
    state = world.state.replace(slots=slots.replace(
        id=slots.id.at[0, Side.SELL].set(7), symbol=slots.symbol.at[0, Side.SELL].set(0),
        price=slots.price.at[0, Side.SELL].set(int(o.price[1]) + TICK),
        remaining=slots.remaining.at[0, Side.SELL].set(100)))
    o2, _ = decide(world, state, frame_of(world, state))
    assert not o2.valid[1]  # no cancel: the quote stays where it is
    assert o2.valid[0]  # the bid is quoted as usual
