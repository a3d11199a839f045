"""Short selling: the borrow pool, per-agent short limits, the long limit, the ledger, fees."""

import jax.numpy as jnp
import numpy as np
import pytest

from components.frame import Frame
from components.money import RATE_SCALE, apply_rate
from components.orders import OrderType, Reason, Side
from qtg.core.config import ConfigError
from qtg.core.world import build_world
from systems.settle import borrow_claims, settle_fills
from tests.support import make_config
from tests.systems.test_systems import KEY, run_validate, with_slot

POOL = 100  # shares: 1% of 10,000 outstanding


@pytest.fixture(scope="module")
def world():
    """1 maker and 3 noise traders (max_short 80) on one symbol with a 100-share pool."""
    cfg = make_config(**{
        "market.symbols": ["ACME"], "market.shares_outstanding": 10_000, "market.borrow_fraction": 0.01,
        "population.market_maker.count": 1, "population.noise.count": 3,
        "population.noise.max_short": 80,
    })
    return build_world(cfg)


def holding(state, cash, position, claimed=0):
    return state.replace(
        wallet=state.wallet.replace(
            cash=jnp.array(cash, jnp.int64), position=jnp.array(position, jnp.int64).reshape(-1, 1)
        ),
        lender=state.lender.replace(claimed=jnp.array([claimed], jnp.int64)),
    )


def sell(agent, qty, kind=OrderType.LIMIT):
    return dict(agent=agent, side=Side.SELL, kind=kind, price=1_000_000, qty=qty)


def test_pool_and_limits_come_from_the_config(world):
    assert int(world.params.pool[0]) == POOL
    assert int(world.params.outstanding[0]) == 10_000
    assert np.asarray(world.params.max_short).tolist() == [0, 80, 80, 80]  # makers are long only


def test_short_sales_within_limit_and_pool_pass(world):
    state = holding(world.state, [0, 0, 0, 0], [0, 10, 0, 0])
    # Agent 1 sells 50 holding 10: a 40-share short. Agent 2 sells 50 from flat.
    valid, reason, _ = run_validate(world, state, [sell(1, 50), sell(2, 50)])
    # Claims 40 + 50 = 90 fit the pool of 100.
    assert valid.tolist() == [True, True]
    assert reason.tolist() == [0, 0]


def test_short_limit_and_long_only_makers(world):
    state = holding(world.state, [0, 0, 0, 0], [5, 0, 0, 0])
    valid, reason, counts = run_validate(world, state, [sell(0, 6), sell(1, 81), sell(2, 80)])
    assert reason.tolist() == [Reason.SHORT_LIMIT, Reason.SHORT_LIMIT, 0]
    assert valid.tolist() == [False, False, True]
    assert counts[Reason.SHORT_LIMIT] == 2


def test_pool_is_granted_in_batch_order_until_it_overflows(world):
    state = holding(world.state, [0, 0, 0, 0], [0, 0, 0, 0])
    valid, reason, counts = run_validate(world, state, [sell(1, 60), sell(2, 41), sell(3, 10)])
    # 60 fits; 60 + 41 = 101 > 100 overflows; every later claim of the tick is refused too.
    assert reason.tolist() == [0, Reason.NO_BORROW, Reason.NO_BORROW]
    assert counts[Reason.NO_BORROW] == 2
    valid, reason, _ = run_validate(world, state, [sell(1, 60), sell(2, 40)])
    assert reason.tolist() == [0, 0]  # exactly the pool


def test_existing_claims_and_resting_short_sales_use_the_pool(world):
    state = holding(world.state, [0, 0, 0, 0], [0, -30, 0, 0], claimed=70)
    # Agent 1 is short 30 and rests a 20-share sale: its claim is 50 of the 70 claimed.
    state = with_slot(state, 1, Side.SELL, 9 * 2 + 1, 1_000_000, 20)
    valid, reason, _ = run_validate(world, state, [sell(2, 31)])
    assert reason.tolist() == [Reason.NO_BORROW]  # 70 + 31 > 100
    valid, reason, _ = run_validate(world, state, [sell(2, 30)])
    assert reason.tolist() == [0]
    # Agent 1 adding 30 more: short 30 + resting 20 + 30 = 80 <= its limit; needs 30 more borrow.
    valid, reason, _ = run_validate(world, state, [sell(1, 30)])
    assert reason.tolist() == [0]
    valid, reason, _ = run_validate(world, state, [sell(1, 31)])
    assert reason.tolist() == [Reason.SHORT_LIMIT]


def test_short_selling_off_refuses_sales_beyond_the_position():
    cfg = make_config(**{"market.symbols": ["ACME"], "market.short_selling": False,
                         "population.market_maker.count": 1, "population.noise.count": 3})
    w = build_world(cfg)
    state = holding(w.state, [0, 0, 0, 0], [0, 10, 0, 0])
    valid, reason, _ = run_validate(w, state, [sell(1, 10), sell(2, 1)])
    assert reason.tolist() == [0, Reason.INSUFFICIENT_SHARES]


def test_a_buy_beyond_the_shares_outstanding_is_refused(world):
    state = holding(world.state, [10**15, 10**15, 0, 0], [9_000, 0, 0, 0])
    buy = lambda agent, qty: dict(agent=agent, side=Side.BUY, kind=OrderType.LIMIT, price=10_000, qty=qty)  # noqa: E731
    valid, reason, counts = run_validate(world, state, [buy(0, 1_000), buy(1, 10_001)])
    assert reason.tolist() == [0, Reason.POSITION_LIMIT]
    assert counts[Reason.POSITION_LIMIT] == 1


def test_long_beyond_cash_is_refused(world):
    state = holding(world.state, [999_999, 0, 0, 0], [0, 0, 0, 0])
    buy = dict(agent=0, side=Side.BUY, kind=OrderType.LIMIT, price=10_000, qty=100)
    _, reason, _ = run_validate(world, state, [buy])
    assert reason.tolist() == [Reason.INSUFFICIENT_CASH]


def test_borrow_claims_with_and_without_locate(world):
    position = jnp.array([[0], [-30], [10], [5]], jnp.int64)
    slots = world.state.slots
    slots = slots.replace(
        id=slots.id.at[1, 1].set(3).at[2, 1].set(5).at[3, 1].set(7),
        remaining=slots.remaining.at[1, 1].set(20).at[2, 1].set(25).at[3, 1].set(4),
    )
    borrowed, claimed = borrow_claims(world.static, position, slots)
    # Agent 1: short 30 + resting 20; agent 2: 25 resting on 10 held -> 15; agent 3 covered.
    assert np.asarray(borrowed)[:, 0].tolist() == [0, 50, 15, 0]
    assert np.asarray(claimed).tolist() == [65]
    no_locate = world.static.__class__(**{**world.static.__dict__, "locate": False})
    borrowed, claimed = borrow_claims(no_locate, position, slots)
    assert np.asarray(borrowed)[:, 0].tolist() == [0, 30, 0, 0]
    assert np.asarray(claimed).tolist() == [65]


def test_apply_rate_is_exact():
    rng = np.random.default_rng(0)
    value = rng.integers(0, 2**50, 10_000)
    rate = rng.integers(0, 4_000_001, 10_000)
    got = np.asarray(apply_rate(jnp.asarray(value), jnp.asarray(rate)))
    want = [v * r // RATE_SCALE for v, r in zip(value.tolist(), rate.tolist())]
    assert got.tolist() == want


def test_settle_lends_and_charges_exact_fees(world):
    """A short sale fill: the seller borrows, pays floor(borrowed x last x rate) per tick,
    the lender receives it, cash plus fees is conserved."""
    rate = 12_345  # parts per 1e9 per tick
    params = world.params.replace(borrow_rate=jnp.asarray(rate, jnp.int64))
    state = holding(world.state, [10_000_000_000, 0, 5_000_000_000, 0], [0, 0, 0, 0])
    # Agent 1 (flat) sells 40 to agent 0 at 100.00.
    fills = np.zeros((6, 64), np.int64)
    fills[:, 0] = [1, 0, 0, int(Side.SELL), 1_000_000, 40]  # taker 1 sells, maker 0 buys
    updates = np.full((4, 64), -1, np.int64)
    frame = Frame(fills=jnp.asarray(fills), updates=jnp.asarray(updates))
    new, _ = settle_fills(world.static, params, state, frame, KEY)
    assert np.asarray(new.wallet.position)[:, 0].tolist() == [40, -40, 0, 0]
    assert np.asarray(new.wallet.borrowed)[:, 0].tolist() == [0, 40, 0, 0]
    last = int(state.market.last[0])
    fee = 40 * last * rate // RATE_SCALE
    assert fee > 0
    assert int(new.wallet.cash[1]) == 40 * 1_000_000 - fee
    assert int(new.wallet.fees[1]) == fee and int(new.lender.cash) == fee
    assert int(new.lender.lent[0]) == 40 and int(new.lender.claimed[0]) == 40
    total = int(np.asarray(state.wallet.cash).sum())
    assert int(np.asarray(new.wallet.cash).sum()) + int(new.lender.cash) == total
    # A second tick charges again on the same borrow.
    frame2 = Frame(fills=jnp.zeros((6, 64), jnp.int64), updates=jnp.asarray(updates))
    newer, _ = settle_fills(world.static, params, new, frame2, KEY)
    assert int(newer.wallet.fees[1]) == 2 * fee and int(newer.lender.cash) == 2 * fee


def test_fees_beyond_cash_are_recorded_unpaid(world):
    params = world.params.replace(borrow_rate=jnp.asarray(4_000_000, jnp.int64))
    state = holding(world.state, [0, 0, 0, 0], [0, -10, 0, 10])
    state = state.replace(wallet=state.wallet.replace(cash=jnp.array([0, 100, 0, 0], jnp.int64)))
    frame = Frame(fills=jnp.zeros((6, 64), jnp.int64), updates=jnp.full((4, 64), -1, jnp.int64))
    new, _ = settle_fills(world.static, params, state, frame, KEY)
    due = 10 * int(state.market.last[0]) * 4_000_000 // RATE_SCALE
    assert int(new.wallet.cash[1]) == 0 and int(new.lender.cash) == 100
    assert int(new.lender.unpaid) == due - 100


def test_float_must_cover_holdings_and_pool():
    with pytest.raises(ConfigError, match="market.shares_outstanding"):
        build_world(make_config(**{"market.symbols": ["ACME"], "market.shares_outstanding": 3_000,
                                   "population.market_maker.count": 1, "population.noise.count": 3}))
