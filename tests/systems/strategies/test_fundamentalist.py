"""Fundamentalists: decisions on a crafted fair value against a NumPy reference, the
noise's standard deviation, and runs on both engines under the conservation invariants."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.frame import Frame
from components.money import SCALE
from components.orders import OrderType, Reason, Side
from qtg.core.config import ConfigError
from qtg.core.world import build_world
from systems.admission import admit_orders
from systems.observe import observe_market
from systems.strategies import fundamentalist
from tests.support import make_config, run_sim

KEY = jax.random.key(0)
PRICE = 100.0  # opening price, currency
TICK = 100  # units (0.01)
COLLAR = 0.02
BUY_PRICE = int(np.ceil(PRICE * (1 + COLLAR) * SCALE / TICK)) * TICK
SELL_PRICE = int(np.floor(PRICE * (1 - COLLAR) * SCALE / TICK)) * TICK

# Exact rules: no bias, no noise, always reacting, entry 2%, exit 0.5%, size 50, limit 200.
EXACT = {"bias": 0.0, "noise": 0.0, "reaction": [1.0, 1.0], "entry": [0.02, 0.02],
         "exit": [0.005, 0.005], "size": [50, 50], "max_position": [200, 200]}


def world_of(count=4, market=None, **changes):
    """``count`` fundamentalists on one symbol, nobody else; ``market``: market.* changes."""
    keys = {"population.noise.count": 0, "population.market_maker.count": 0, "market.symbols": ["ACME"],
            "population.fundamentalist.count": count}
    keys.update({f"market.{k}": v for k, v in (market or {}).items()})
    keys.update({f"population.fundamentalist.{k}": v for k, v in {**EXACT, **changes}.items()})
    return build_world(make_config(**keys))


def with_positions(state, shares):
    pos = state.wallet.position.at[:, 0].set(jnp.asarray(shares, jnp.int64))
    return state.replace(wallet=state.wallet.replace(position=pos))


def decide(world, state, fair, key=KEY):
    """(orders as NumPy, frame) with the symbol's fair value set to ``fair`` (currency)."""
    frame = observe_market(world.static, world.params, state, Frame(), key)[1]
    frame = frame.replace(view=frame.view.replace(fair=jnp.full(world.static.n_symbols, fair * SCALE)))
    kind = world.static.kind("fundamentalist")
    o = fundamentalist.decide(world.static, kind, world.params, world.params.kinds["fundamentalist"],
                              state, frame, key)
    return jax.tree.map(np.asarray, o), frame


def iocs(o):
    """The IOC rows (each agent writes cancel, IOC)."""
    return jax.tree.map(lambda x: x[1::2], o)


def accepted(world, state, o, frame):
    """The pre-trade checks' verdict on the rows: reasons i8[B] (0 = passed)."""
    f = Frame(view=frame.view, orders=jax.tree.map(jnp.asarray, o))
    _, f = admit_orders(world.static, world.params, state, f, KEY)
    return np.asarray(f.reject_reason)


def test_buys_when_the_fair_value_is_above_the_price_by_more_than_entry():
    world = world_of()
    state = with_positions(world.state, [0, 120, 180, 200])
    o, frame = decide(world, state, PRICE * 1.03)  # gap log(1.03) = 0.0296 > 0.02
    new = iocs(o)
    assert not o.valid[0::2].any()  # no resting order to cancel
    assert new.valid.tolist() == [True, True, True, False]  # the last is at its limit
    assert (new.kind == OrderType.IOC).all() and (new.side[new.valid] == Side.BUY).all()
    assert new.qty[new.valid].tolist() == [50, 50, 20]  # slices of size, then the room left
    assert (new.price[new.valid] == BUY_PRICE).all()
    assert (accepted(world, state, o, frame) == 0).all()


def test_sells_and_goes_short_when_the_fair_value_is_below():
    world = world_of(max_short=100)
    state = with_positions(world.state, [200, 0, -80, -100])
    o, frame = decide(world, state, PRICE * 0.97)
    new = iocs(o)
    assert new.valid.tolist() == [True, True, True, False]
    assert (new.side[new.valid] == Side.SELL).all() and (new.price[new.valid] == SELL_PRICE).all()
    # A long sells a slice; the flat and the short go short, no further than max_short (100).
    assert new.qty[new.valid].tolist() == [50, 50, 20]
    assert (accepted(world, state, o, frame) == 0).all()
    # Without short selling in the market: only what it holds.
    long_only = world_of(max_short=100, market={"short_selling": False})
    state = with_positions(long_only.state, [200, 30, 0, 0])
    new = iocs(decide(long_only, state, PRICE * 0.97)[0])
    assert new.valid.tolist() == [True, True, False, False] and new.qty[:2].tolist() == [50, 30]


def test_goes_flat_inside_exit_and_holds_between_exit_and_entry():
    world = world_of()
    state = with_positions(world.state, [150, -150, 30, 0])
    # Gap 0.2% < exit: everyone trades toward flat, in slices of size.
    new = iocs(decide(world, state, PRICE * 1.002)[0])
    assert new.valid.tolist() == [True, True, True, False]
    assert new.side[:3].tolist() == [Side.SELL, Side.BUY, Side.SELL]
    assert new.qty[:3].tolist() == [50, 50, 30]
    # Gap 1% (between exit and entry), either way: hold, nobody trades.
    for fair in (PRICE * 1.01, PRICE / 1.01):
        assert not decide(world, state, fair)[0].valid.any()


def test_does_nothing_when_not_reacting_or_without_a_fair_value():
    world = world_of(reaction=[0.0, 0.0])
    assert not decide(world, world.state, PRICE * 1.5)[0].valid.any()
    world = world_of()
    assert not decide(world, world.state, 0.0)[0].valid.any()  # no fair value to read


def reference_orders(p, fair, ref, position, act, z):
    """NumPy reference of one tick's IOC rows: (valid, buy, qty) per agent."""
    gap = np.log(fair) - np.log(ref) + p["bias"] + p["noise"] * z
    aim = np.where(gap > p["entry"], p["max_position"],
                   np.where(gap < -p["entry"], -p["max_position"],
                            np.where(np.abs(gap) < p["exit"], 0, position)))
    want = np.where(act < p["reaction"], aim - position, 0)
    return want != 0, want > 0, np.minimum(np.abs(want), p["size"])


def test_decisions_with_noise_and_bias_match_a_numpy_reference():
    """Many agents with drawn parameters, bias and noise: each tick's orders as the rule
    says, from the same draws (plenty of cash and shares, so no other cap binds)."""
    n = 400
    world = world_of(n, bias=0.01, noise=0.01, reaction=[0.2, 0.8], entry=[0.01, 0.02],
                     exit=[0.0, 0.005], size=[10, 60], max_position=[100, 300], shares=1000)
    kp = world.params.kinds["fundamentalist"]
    p = {"bias": np.asarray(kp.bias), "noise": float(kp.noise), "reaction": np.asarray(kp.reaction),
         "entry": np.asarray(kp.entry), "exit": np.asarray(kp.exit), "size": np.asarray(kp.trade.size),
         "max_position": np.asarray(kp.trade.max_position)}
    rng = np.random.default_rng(5)
    seen = 0
    for t, fair in enumerate((PRICE * 1.012, PRICE * 0.985, PRICE)):
        position = rng.integers(-300, 300, n)
        state = with_positions(world.state, position)
        key = jax.random.fold_in(KEY, t)
        new = iocs(decide(world, state, fair, key)[0])
        act, z = map(np.asarray, fundamentalist.draws(key, n))
        valid, buy, qty = reference_orders(p, fair * SCALE, PRICE * SCALE, position, act, z)
        np.testing.assert_array_equal(new.valid, valid)
        np.testing.assert_array_equal(new.side[valid] == Side.BUY, buy[valid])
        np.testing.assert_array_equal(new.qty[valid], qty[valid])
        seen += valid.sum()
    assert seen > 100


def test_the_noise_and_the_bias_have_the_configured_sd():
    # The draws: uniform act in [0, 1), standard normal z (moments and quantiles).
    act, z = map(np.asarray, fundamentalist.draws(KEY, 200_000))
    assert 0 <= act.min() and act.max() < 1 and abs(act.mean() - 0.5) < 0.003
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs(np.mean(z > 1.959964) - 0.025) < 0.002 and abs(np.mean(z < -1.0) - 0.158655) < 0.004
    assert abs(np.corrcoef(act, z)[0, 1]) < 0.01  # the two come from different bits
    # Through decide: with gap 0 plus noise of sd 0.01, an agent buys when noise * z >
    # entry = 0.01, i.e. with probability 1 - Phi(1) = 0.1587, and sells as often.
    n = 20_000
    world = world_of(n, noise=0.01, entry=[0.01, 0.01], exit=[0.0, 0.0])
    new = iocs(decide(world, world.state, PRICE)[0])
    tail = 0.5 * math.erfc(1.0 / math.sqrt(2.0))
    se = math.sqrt(tail * (1 - tail) / n)
    buys, sells = (new.valid & (new.side == Side.BUY)).mean(), (new.valid & (new.side == Side.SELL)).mean()
    assert abs(buys - tail) < 4 * se and abs(sells - tail) < 4 * se
    # The persistent bias: drawn once per agent, normal with sd ``bias``.
    bias = np.asarray(world_of(n, bias=0.02).params.kinds["fundamentalist"].bias)
    assert abs(bias.std() - 0.02) < 0.02 * 4 / math.sqrt(2 * n) and abs(bias.mean()) < 4 * 0.02 / math.sqrt(n)


def test_exit_above_entry_is_refused():
    with pytest.raises(ConfigError, match="population.fundamentalist.exit: every exit must be <= every entry"):
        world_of(entry=[0.01, 0.02], exit=[0.0, 0.015])


def engine_config(engine):
    return make_config(**{
        "engine.name": engine, "run.ticks": 150, "hooks": [], "market.symbols": ["ACME", "BOLT"],
        "population.market_maker.count": 4, "population.noise.count": 20,
        "population.fundamentalist.count": 10, "population.fundamentalist.max_short": 100,
        "population.fundamentalist.entry": [0.001, 0.003], "population.fundamentalist.exit": [0.0, 0.001],
        "population.fundamentalist.bias": 0.003, "population.fundamentalist.reaction": [0.3, 0.6],
    })


@pytest.mark.slow
def test_exact_and_fast_engines_give_identical_fills_with_fundamentalists():
    runs = {e: run_sim(engine_config(e)) for e in ("fast", "exact")}
    fast, exact = runs["fast"], runs["exact"]
    assert fast.check.ticks == exact.check.ticks == 150  # conservation held every tick
    assert fast.rec.fill_hash == exact.rec.fill_hash
    np.testing.assert_array_equal(np.asarray(fast.sim.state.wallet.cash), np.asarray(exact.sim.state.wallet.cash))
    np.testing.assert_array_equal(np.asarray(fast.sim.state.wallet.position),
                                  np.asarray(exact.sim.state.wallet.position))
    # The fundamentalists traded, both ways, within their limits, and were never refused
    # for cash or shares.
    k = fast.sim.static.kind("fundamentalist")
    trades = fast.rec.trades[k.start : k.stop]
    pos = np.asarray(fast.sim.state.wallet.position)[k.start : k.stop]
    assert trades.sum() > 0 and (pos >= -100).all()
    assert (pos <= np.asarray(fast.sim.params.kinds["fundamentalist"].trade.max_position)[:, None]).all()
    assert fast.rec.rejects[Reason.INSUFFICIENT_CASH] == 0 and fast.rec.rejects[Reason.INSUFFICIENT_SHARES] == 0
