"""Borrow fees never take cash that a resting buy reserves: the buy can always fill.

The one-million-tick soak found agent 78 (a noise trader) at -111 units of cash at tick
288,000: it paid a borrow fee out of cash its resting buy had reserved at admission, then
the buy filled."""

import jax.numpy as jnp
import numpy as np

from components.frame import Frame
from components.money import RATE_SCALE
from components.orders import Side
from systems.settle import settle_fills
from tests.systems.test_short_selling import holding, world  # noqa: F401  (the module fixture)
from tests.systems.test_systems import KEY, with_slot


def test_a_fee_is_paid_from_free_cash_only_and_the_reserved_buy_still_fills(world):  # noqa: F811
    rate = 4_000_000
    params = world.params.replace(borrow_rate=jnp.asarray(rate, jnp.int64))
    # Agent 1 is short 10 shares and has 1,000,000 units, all reserved by a resting buy of
    # 100 shares at 10,000 units; agent 3 holds the shares.
    state = holding(world.state, [0, 1_000_000, 0, 0], [0, -10, 0, 10])
    state = with_slot(state, 1, Side.BUY, 7, 10_000, 100)
    empty = Frame(fills=jnp.zeros((6, 64), jnp.int64), updates=jnp.full((4, 64), -1, jnp.int64))
    new, _ = settle_fills(world.static, params, state, empty, KEY)
    due = 10 * int(state.market.last[0]) * rate // RATE_SCALE
    assert due > 0
    assert int(new.wallet.cash[1]) == 1_000_000, "the reserved cash pays no fee"
    assert int(new.lender.unpaid) == due and int(new.lender.cash) == 0
    # The resting buy fills in full (agent 3 sells into it): cash lands at exactly 0.
    fills = np.zeros((6, 64), np.int64)
    fills[:, 0] = [3, 1, 0, int(Side.SELL), 10_000, 100]  # taker 3 sells, maker 1 buys
    updates = np.full((4, 64), -1, np.int64)
    updates[:, 0] = [7, 0, 10_000, 0]  # the buy is done
    filled, _ = settle_fills(world.static, params, new, Frame(fills=jnp.asarray(fills), updates=jnp.asarray(updates)), KEY)
    assert int(filled.wallet.cash[1]) == 0
    assert int(np.asarray(filled.wallet.cash).min()) >= 0
    total = int(np.asarray(state.wallet.cash).sum())
    assert int(np.asarray(filled.wallet.cash).sum()) + int(filled.lender.cash) == total


def test_free_cash_beyond_the_reservation_still_pays(world):  # noqa: F811
    rate = 4_000_000
    params = world.params.replace(borrow_rate=jnp.asarray(rate, jnp.int64))
    state = holding(world.state, [0, 1_000_000 + 50, 0, 0], [0, -10, 0, 10])
    state = with_slot(state, 1, Side.BUY, 7, 10_000, 100)
    empty = Frame(fills=jnp.zeros((6, 64), jnp.int64), updates=jnp.full((4, 64), -1, jnp.int64))
    new, _ = settle_fills(world.static, params, state, empty, KEY)
    due = 10 * int(state.market.last[0]) * rate // RATE_SCALE
    assert due > 50
    assert int(new.wallet.cash[1]) == 1_000_000 and int(new.lender.cash) == 50
    assert int(new.lender.unpaid) == due - 50
