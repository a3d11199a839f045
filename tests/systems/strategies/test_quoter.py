"""Quoters: an action's two levels become a bid and an ask at their distances from the
reference, sized within the position limits and the cash, against exact values; level 0
withdraws a side; in a running market the quotes rest and fill."""

import math

import jax
import numpy as np
import pytest

from components.frame import Frame
from components.money import SCALE
from components.orders import OrderType, Side
from qtg.core import rollout as ro
from qtg.core.world import build_world
from systems.observe import observe_market
from systems.strategies import quoter
from tests.support import make_config

KEY = jax.random.key(0)
PRICE = 100.0 * SCALE  # opening price, units
TICK = 100  # units (0.01)
STEP = 0.0003


def world_of(**changes):
    """One quoter on ACME (levels 4, step 3 bp, size 100, limits 250 long, 150 short), nobody else."""
    keys = {"population.noise.count": 0, "population.market_maker.count": 0, "market.symbols": ["ACME"],
            "population.quoter.count": 1, "population.quoter.size": [100, 100], "population.quoter.step": STEP,
            "population.quoter.max_position": [250, 250], "population.quoter.max_short": 150}
    keys.update({f"population.quoter.{k}": v for k, v in changes.items()})
    return build_world(make_config(**keys))


def decide(world, state):
    frame = observe_market(world.static, world.params, state, Frame(), KEY)[1]
    kind = world.static.kind(quoter.KIND)
    orders, _ = quoter.decide(world.static, kind, world.params, world.params.kinds[quoter.KIND], state, frame, KEY)
    return jax.tree.map(np.asarray, orders)


def holding(world, shares):
    kind = world.static.kind(quoter.KIND)
    return world.state.replace(wallet=world.state.wallet.replace(
        position=world.state.wallet.position.at[kind.start, 0].set(shares)))


def test_actions_are_pairs_of_levels():
    p = build_world(make_config(**{"population.quoter.count": 2, "population.quoter.levels": 3})).params.kinds["quoter"]
    bid, ask = quoter.sides(p, np.array([0, 15]))
    assert bid.tolist() == [0, 3] and ask.tolist() == [0, 3]
    for b in range(4):
        for a in range(4):
            action = quoter.action_of(p, np.array([b, b]), np.array([a, a]))
            assert [x.tolist() for x in quoter.sides(p, action)] == [[b, b], [a, a]]
            assert int(action[0]) == 4 * b + a


@pytest.mark.parametrize("bid_level,ask_level", [(1, 1), (1, 4), (3, 2)])
def test_quotes_sit_their_levels_from_the_reference(bid_level, ask_level):
    world = world_of()
    p = world.params.kinds["quoter"]
    state = quoter.with_actions(world.state, quoter.action_of(p, np.array([bid_level]), np.array([ask_level])))
    o = decide(world, state)
    bid = math.floor(PRICE * (1 - bid_level * STEP) / TICK) * TICK
    ask = math.ceil(PRICE * (1 + ask_level * STEP) / TICK) * TICK
    assert o.price.tolist() == [bid, ask] and o.qty.tolist() == [100, 100] and o.valid.all()
    assert o.side.tolist() == [Side.BUY, Side.SELL] and (o.kind == OrderType.LIMIT).all()


def test_level_zero_quotes_nothing_and_limits_cap_the_sizes():
    world = world_of(shares=0)
    p = world.params.kinds["quoter"]
    both = quoter.action_of(p, np.array([2]), np.array([2]))
    assert not decide(world, world.state).valid.any()  # action 0: no quotes
    assert decide(world, quoter.with_actions(world.state, quoter.action_of(p, np.array([0]), np.array([2])))).valid.tolist() == [False, True]
    # 200 long of a 250 limit: the bid is 50; 100 short of a 150 limit: the ask is 50.
    assert decide(world, quoter.with_actions(holding(world, 200), both)).qty.tolist() == [50, 100]
    assert decide(world, quoter.with_actions(holding(world, -100), both)).qty.tolist() == [100, 50]
    # at a limit the side that would pass it is not quoted
    assert decide(world, quoter.with_actions(holding(world, 250), both)).valid.tolist() == [False, True]
    assert decide(world, quoter.with_actions(holding(world, -150), both)).valid.tolist() == [True, False]
    # cash for 30 shares at the bid
    poor = world_of(shares=0, cash=30 * 99.94)
    assert decide(poor, quoter.with_actions(poor.state, both)).qty.tolist() == [30, 100]


def test_quotes_rest_and_fill_in_a_market():
    """With makers and noise traders around, a quoter at one level each side is filled on
    both sides over 60 ticks, never passes its limits, and cash (the lender's borrow fees included) and shares are conserved."""
    cfg = make_config(**{"market.symbols": ["ACME"], "population.noise.count": 20, "population.market_maker.count": 2,
                         "population.quoter.count": 1, "population.quoter.size": [100, 100],
                         "population.quoter.max_position": [300, 300], "population.quoter.max_short": 300,
                         "engine.capacity": 32})
    world = build_world(cfg)
    row = world.static.kind(quoter.KIND).start
    p = world.params.kinds["quoter"]
    state = ro.with_books(world.state, world.static, 32)
    cash0, shares0 = int(state.wallet.cash.sum()) + int(state.lender.cash), int(state.wallet.position.sum())
    state = quoter.with_actions(state, quoter.action_of(p, np.array([1]), np.array([1])))
    held, bought, sold = [], 0, 0
    step = jax.jit(ro.step, static_argnums=(0, 3))
    for _ in range(60):
        before = int(state.wallet.position[row, 0])
        state, _ = step(world.static, world.params, state, 0)
        after = int(state.wallet.position[row, 0])
        bought, sold = bought + max(after - before, 0), sold + max(before - after, 0)
        held.append(after)
    assert bought > 0 and sold > 0
    assert max(held) <= 300 and min(held) >= -300
    assert int(state.wallet.cash.sum()) + int(state.lender.cash) == cash0 and int(state.wallet.position.sum()) == shares0
