"""The soak benchmark's checks: a short soak passes them with a shadow engine, and each
check catches the fault it is for."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from components.orders import Side
from qtg.bench.soak import Violation, check_books, check_priority, check_world, opening_totals, soak


@pytest.fixture(scope="module")
def short_soak():
    return soak(ticks=1_500, every=500, engine="fast", shadow=True, progress=False)


def test_a_short_soak_passes_every_check_with_the_exact_engine_as_shadow(short_soak):
    r = short_soak
    assert r["violation"] is None
    assert r["ticks"] == 1_500 and r["checks_passed"] == 3
    assert r["fills"] > 1_000 and r["orders"] > r["fills"]


def test_price_priority_is_checked_per_symbol_and_side():
    book = {"symbol": np.array([0, 0, 0, 0, 1]), "side": np.array([Side.BUY, Side.BUY, Side.SELL, Side.SELL, Side.BUY]),
            "price": np.array([105, 104, 106, 107, 90])}
    check_priority(book)  # bids down, asks up, a new symbol starts afresh
    bad = dict(book, price=np.array([104, 105, 106, 107, 90]))
    with pytest.raises(Violation, match="price priority broken on symbol 0 side 0: 104 then 105"):
        check_priority(bad)
    bad = dict(book, price=np.array([105, 104, 107, 106, 90]))
    with pytest.raises(Violation, match="side 1: 107 then 106"):
        check_priority(bad)


class _Sim:
    """A stand-in simulation over a real world and engine, whose state a test can spoil."""

    def __init__(self, world, engine, state):
        self.static, self.params, self.state, self.engine = world.static, world.params, state, engine


def test_the_world_and_book_checks_catch_spoiled_money_shares_and_slots():
    import qtg  # noqa: F401
    from qtg.core.config import to_config
    from qtg.core.world import build_world, make_engine_for

    cfg = to_config({"hooks": [], "market": {"symbols": ["A", "B"], "sectors": []}})
    world = build_world(cfg)
    engine = make_engine_for(cfg, world.static)
    state = world.state
    totals = opening_totals(state)
    check_world(_Sim(world, engine, state), totals)
    check_books(_Sim(world, engine, state))

    richer = state.replace(wallet=state.wallet.replace(cash=state.wallet.cash.at[3].add(1)))
    with pytest.raises(Violation, match="cash not conserved"):
        check_world(_Sim(world, engine, richer), totals)
    more = state.replace(wallet=state.wallet.replace(position=state.wallet.position.at[3, 1].add(1)))
    with pytest.raises(Violation, match="shares not conserved"):
        check_world(_Sim(world, engine, more), totals)
    slots = dataclasses.replace(state.slots, id=state.slots.id.at[5, Side.BUY].set(jnp.int64(12345)))
    with pytest.raises(Violation, match="1 slots not resting"):
        check_books(_Sim(world, engine, state.replace(slots=slots)))
