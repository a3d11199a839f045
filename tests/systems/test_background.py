"""The tier 3 background pool: its order statistics against the configured distributions,
the mood's side bias, its ring of resting orders against the engine's book, aggregate
accounting under the conservation invariants, and the runaway check."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.agents import NO_ORDER
from components.frame import Frame
from components.orders import OrderType, Side
from qtg.core.config import ConfigError, ScheduledEvent
from qtg.core.sim import BackgroundRunaway, Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder
from systems.background import (
    BACKGROUND_ID,
    REGIMES,
    background_orders,
    buy_probability,
    capacity,
)
from systems.observe import observe_market
from tests.support import InvariantCheck, Run, make_config, run_sim

DRAWS = 300
POOL = {"count": 20_000, "vol_feedback": 0.0, "size_median": 40.0, "offset_cap": 0.01}


def _pool_config(**pool):
    return make_config(**{
        "population.background": {**POOL, **pool},
        "market.tick_size": 0.0001,  # a fine grid, so rounding barely moves the offsets
        "run.ticks": 10,
    })


@pytest.fixture(scope="module")
def draws():
    """DRAWS ticks of the pool's generator on one world state (tick 1), moods 0 and +0.1."""
    cfg = _pool_config()
    w = build_world(cfg)
    state = w.state.replace(tick=jnp.asarray(1, jnp.int64))
    _, frame = observe_market(w.static, w.params, state, Frame(), jax.random.key(0))

    @jax.jit
    def gen(key, mood):
        st = state.replace(background=state.background.replace(mood=jnp.full(len(w.static.symbols), mood)))
        return background_orders(w.static, w.params, st, frame, key)

    keys = jax.random.split(jax.random.key(7), DRAWS)
    out = {m: jax.tree.map(np.asarray, jax.vmap(gen, in_axes=(0, None))(keys, m)) for m in (0.0, 0.1)}
    return w, np.asarray(frame.view.ref), out


def _new_rows(w, batch):
    r = w.static.background.rows
    return jax.tree.map(lambda x: x[:, :r], batch)


def test_order_count_is_poisson_with_the_configured_rate(draws):
    w, _, out = draws
    bs, s = w.static.background, w.static.n_symbols
    lam = POOL["count"] / s * REGIMES["normal"]["activity"]
    counts = _new_rows(w, out[0.0]).valid.reshape(DRAWS, s, bs.cap).sum(-1)  # [draws, S]
    assert bs.cap == capacity(POOL["count"], s, REGIMES["normal"]["activity"], 1.0)
    se = math.sqrt(lam / counts.size)
    assert abs(counts.mean() - lam) < 4 * se
    # Poisson: the variance equals the mean (its standard error ~ lam * sqrt(2 / n)).
    assert abs(counts.var() / lam - 1) < 4 * math.sqrt(2 / counts.size)
    # Rows fill from the front of each symbol's block.
    v = _new_rows(w, out[0.0]).valid.reshape(DRAWS, s, bs.cap)
    assert (np.diff(v.astype(int), axis=-1) <= 0).all()


def test_sides_balance_under_zero_mood_and_lean_to_buys_under_positive_mood(draws):
    w, _, out = draws
    for mood, expect in ((0.0, 0.5), (0.1, None)):
        b = _new_rows(w, out[mood])
        side = b.side[b.valid]
        buys = (side == Side.BUY).mean()
        p = float(buy_probability(w.params.background, jnp.asarray(mood))) if expect is None else expect
        assert abs(buys - p) < 4 * math.sqrt(p * (1 - p) / side.size), (mood, buys, p)
    p_pos = float(buy_probability(w.params.background, jnp.asarray(0.1)))
    # 0.5 + 0.5 * max_bias * tanh(gain * mood) * (1 - 2 * contrarian), the defaults
    assert p_pos == pytest.approx(0.5 + 0.5 * 0.5 * math.tanh(0.5) * 0.6)
    assert p_pos > 0.55


def test_sizes_are_log_normal_and_capped(draws):
    w, _, out = draws
    b = _new_rows(w, out[0.0])
    qty = b.qty[b.valid]
    assert qty.min() >= 1 and qty.max() <= w.params.background.size_cap
    log = np.log(qty)
    sigma = REGIMES["normal"]["size_sigma"]
    assert np.median(qty) == pytest.approx(POOL["size_median"], rel=0.05)
    assert log.std() == pytest.approx(sigma, rel=0.05)
    # Quartiles of log size against the normal's (rounding to whole shares is small at a median of 40).
    q1, q3 = np.quantile(log, [0.25, 0.75])
    assert (q3 - q1) == pytest.approx(2 * 0.6745 * sigma, rel=0.06)


def test_price_offsets_are_exponential_capped_and_aggressive_at_the_configured_rate(draws):
    w, ref, out = draws
    b = _new_rows(w, out[0.0])
    sym, price, buy = b.symbol[b.valid], b.price[b.valid], b.side[b.valid] == Side.BUY
    rel = price / ref[sym] - 1.0
    offset = np.abs(rel)
    cap, mean = POOL["offset_cap"], REGIMES["normal"]["offset_mean"]
    tick_rel = 1.0 / ref.min()  # one unit of price, relative
    assert offset.max() <= cap + tick_rel
    # A capped exponential: E[min(mean * X, cap)] = mean * (1 - exp(-cap / mean)).
    expected = mean * (1 - math.exp(-cap / mean))
    assert offset.mean() == pytest.approx(expected, rel=0.03, abs=tick_rel)
    assert np.median(offset) == pytest.approx(mean * math.log(2), rel=0.05, abs=tick_rel)
    # Aggressive orders reach through the mid: buys above it, sells below it.
    through = np.where(buy, rel > 0, rel < 0)
    a = REGIMES["normal"]["aggressive"]
    assert abs(through.mean() - a) < 4 * math.sqrt(a * (1 - a) / through.size) + 0.01
    assert (b.kind[b.valid] == OrderType.LIMIT).all()
    assert (price % 1 == 0).all() and (price > 0).all()


def test_ids_and_owners_never_collide_with_agents(draws):
    w, _, out = draws
    b = out[0.0]
    assert (b.id[:, : w.static.background.rows] >= BACKGROUND_ID).all()
    assert (b.agent >= w.static.n_agents).all()


@pytest.fixture(scope="module")
def pool_run():
    cfg = make_config(**{
        "population.background": {"count": 4_000, "lifetime": 3},
        "news.scheduled": [ScheduledEvent(kind="sector", tick=40, target="tech", size=0.2)],
        "news.earnings.rate": 0.0, "news.guidance.rate": 0.0, "news.rate.rate": 0.0, "news.sector.rate": 0.0,
    })
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    rec, check, pool = Recorder(), InvariantCheck(), _PoolFills(sim.static.background.agent_base, sim.static.n_symbols)
    sim.run(120, hooks=[rec, check, pool])
    run = Run(cfg, world.state, sim, rec, check)
    run.pool = pool
    return run


class _PoolFills:
    """The pool's side of every fill, summed per symbol on the host (a slow reference)."""

    def __init__(self, base: int, n_symbols: int):
        self.base = base
        self.bought, self.sold = np.zeros(n_symbols, np.int64), np.zeros(n_symbols, np.int64)
        self.paid, self.got = np.zeros(n_symbols, np.int64), np.zeros(n_symbols, np.int64)

    def on_start(self, sim):
        pass

    def on_tick(self, sim, result):
        f = result.fills
        for taker, maker, sym, side, price, qty in zip(f.taker_agent, f.maker_agent, f.symbol, f.side, f.price, f.qty):
            buyer, seller = (taker, maker) if side == Side.BUY else (maker, taker)
            if buyer >= self.base:
                self.bought[sym] += qty
                self.paid[sym] += price * qty
            if seller >= self.base:
                self.sold[sym] += qty
                self.got[sym] += price * qty

    def on_end(self, sim):
        pass


def test_pool_run_conserves_cash_and_shares_and_its_ring_matches_the_book(pool_run):
    sim = pool_run.sim
    assert pool_run.check.ticks == 120  # InvariantCheck counts the pool's cash and shares
    bg = jax.tree.map(np.asarray, sim.state.background)
    book = sim.engine.resting_orders()
    live_pool = set(int(i) for i in book["id"] if i >= BACKGROUND_ID)
    ring = set(int(i) for i in bg.resting.reshape(-1) if i != NO_ORDER)
    assert live_pool == ring and ring
    # No pool order outlives its lifetime.
    R = sim.static.background.rows
    sent = (np.array(sorted(ring)) - BACKGROUND_ID) // R
    now = int(sim.state.tick)
    assert (sent > now - 1 - sim.static.background.lifetime).all()
    # The pool traded in every symbol, and its account adds up.
    assert (bg.bought > 0).all() and (bg.sold > 0).all()
    pool = pool_run.pool
    assert np.array_equal(bg.bought, pool.bought) and np.array_equal(bg.sold, pool.sold)
    assert np.array_equal(bg.buy_value, pool.paid) and np.array_equal(bg.sell_value, pool.got)
    assert (bg.position - bg.opening_position == bg.bought - bg.sold).all()
    assert int(bg.cash - bg.opening_cash) == int(bg.sell_value.sum() - bg.buy_value.sum())


def test_positive_sector_news_turns_the_pool_mood_toward_buys(pool_run):
    sim = pool_run.sim
    mood = np.asarray(sim.state.background.mood)
    tech = np.asarray(sim.static.sector_of) == sim.static.sectors.index("tech")
    assert (mood[tech] > 0).all()
    assert np.abs(mood[~tech]).max() == 0.0
    p = np.asarray(buy_probability(sim.params.background, jnp.asarray(mood)))
    assert (p[tech] > 0.5).all() and (p[~tech] == 0.5).all()


def test_pool_runs_are_deterministic(pool_run):
    again = run_sim(pool_run.cfg, ticks=120)
    assert again.rec.fill_hash == pool_run.rec.fill_hash
    assert np.array_equal(np.asarray(again.sim.state.background.sent), np.asarray(pool_run.sim.state.background.sent))


def test_runaway_bias_stops_the_run_loudly():
    cfg = make_config(**{"population.background": {"count": 4_000, "max_drift": 0.0001}})
    with pytest.raises(BackgroundRunaway, match="background pool"):
        run_sim(cfg, ticks=200)


def test_runaway_check_names_the_first_drifted_holding():
    from types import SimpleNamespace

    from systems.background import check_runaway

    def pool(cash, position):
        return SimpleNamespace(cash=jnp.int64(cash), opening_cash=jnp.int64(1_000_000),
                               position=jnp.asarray(position, jnp.int64),
                               opening_position=jnp.asarray([100, 200, 300], jnp.int64))

    names = ("AAA", "BBB", "CCC")
    assert check_runaway(pool(1_100_000, [110, 180, 300]), 0.1, names) is None  # on the bounds
    assert "BBB drifted to 179 shares from 200" in check_runaway(pool(1_000_000, [100, 179, 400]), 0.1, names)
    assert "CCC drifted to 331 shares" in check_runaway(pool(1_000_000, [100, 200, 331]), 0.1, names)
    msg = check_runaway(pool(1_100_001, [0, 0, 0]), 0.1, names)  # cash is reported first
    assert msg.startswith("background pool cash drifted to 110% of its opening 100")


def test_bad_pool_config_is_refused_with_one_line():
    with pytest.raises(ConfigError, match="population.background.regime: unknown regime"):
        make_config(**{"population.background": {"count": 10, "regime": "panic"}})
    with pytest.raises(ConfigError, match="population.background.offset_mean"):
        make_config(**{"population.background": {"count": 10, "offset_mean": 0.05, "offset_cap": 0.01}})
