"""The world and the tick: conservation, determinism, trading, compile-once, slot tracking."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.agents import NO_ORDER
from components.frame import Frame
from components.orders import Side
from qtg.core.schedule import DEFAULT_SCHEDULE, Stage
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from systems.decide import decide_orders
from tests.support import make_config, run_sim


def test_default_run_conserves_cash_and_shares_every_tick(default_run):
    # InvariantCheck asserted exact conservation and non-negative holdings on every tick.
    assert default_run.check.ticks == 1000
    w0, w1 = default_run.initial.wallet, default_run.sim.state.wallet
    fees = int(default_run.sim.state.lender.cash)
    assert fees > 0, "the default market sells short and pays borrow fees"
    assert int(w1.cash.sum()) + fees == int(w0.cash.sum())
    assert int(w1.fees.sum()) == fees
    assert default_run.check.max_short_seen > 0
    assert (np.asarray(w1.position).sum(0) == np.asarray(w0.position).sum(0)).all()


def test_default_run_trades(default_run):
    fills = np.array(default_run.rec.fills_per_tick)
    assert fills.sum() > 500, "the default market must trade"
    assert (fills > 0).mean() > 0.3, "trades should happen through the run, not in one burst"
    # Both kinds hold different inventory than they started with: they traded.
    static = default_run.sim.static
    pos0 = np.asarray(default_run.initial.wallet.position)
    pos1 = np.asarray(default_run.sim.state.wallet.position)
    for kind in static.kinds:
        assert (pos0[kind.start : kind.stop] != pos1[kind.start : kind.stop]).any(), kind.name


def test_opening_tick_seeds_a_two_sided_book():
    run = run_sim(make_config(), ticks=1)
    r = run.rec
    assert r.fills_per_tick == [0]
    bid, ask = r.bid[0][0], r.ask[0][0]
    assert 0 < bid < 1_000_000 < ask  # around the 100.00 opening price
    # Only market makers sent orders at the opening (2 quotes each).
    assert r.accepted == 2 * run.sim.static.kind("market_maker").count


def test_slots_match_the_engine_book(default_run):
    """Every resting order in the engine is in its owner's slot, and nothing else is."""
    sim = default_run.sim
    book = sim.engine.resting_orders()
    slots = jax.tree.map(np.asarray, sim.state.slots)
    live = slots.id != NO_ORDER
    assert live.sum() == len(book["id"])
    for oid, agent, side, price, qty, sym in zip(
        book["id"], book["agent"], book["side"], book["price"], book["qty"], book["symbol"]
    ):
        assert slots.id[agent, side] == oid
        assert slots.remaining[agent, side] == qty
        assert slots.price[agent, side] == price
        assert slots.symbol[agent, side] == sym


def test_same_seed_same_fills_and_different_seed_differs():
    a = run_sim(make_config(), ticks=200)
    b = run_sim(make_config(), ticks=200)
    c = run_sim(make_config(seed=1), ticks=200)
    assert sum(a.rec.fills_per_tick) > 0
    assert a.rec.fill_hash == b.rec.fill_hash
    assert a.rec.fill_hash != c.rec.fill_hash


def test_exact_and_fast_engines_give_the_same_run(exact_run):
    fast = run_sim(make_config(), ticks=300)
    assert sum(fast.rec.fills_per_tick) > 0
    assert exact_run.rec.fill_hash == fast.rec.fill_hash
    assert (np.asarray(exact_run.sim.state.wallet.cash) == np.asarray(fast.sim.state.wallet.cash)).all()


def test_device_engine_gives_the_same_run(exact_run):
    """engine=device (books of 64 slots a side, never full here) trades exactly as the
    exact engine: the same fills, the same wallets and the same book at the end."""
    device = run_sim(make_config(**{"engine.name": "device", "engine.capacity": 64}), ticks=300)
    stats = device.sim.engine.stats()
    assert stats["engine"] == "device" and stats["book_full"] == 0 and stats["fills"] > 0
    assert device.rec.fill_hash == exact_run.rec.fill_hash
    assert (np.asarray(device.sim.state.wallet.cash) == np.asarray(exact_run.sim.state.wallet.cash)).all()
    a, b = device.sim.engine.resting_orders(), exact_run.sim.engine.resting_orders()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_multi_symbol_run_conserves_per_symbol():
    cfg = make_config(**{"market.symbols": ["ACME", "BOLT", "CRUX"], "population.noise.count": 30,
                         "population.market_maker.count": 6})
    run = run_sim(cfg, ticks=150)
    vol = np.array(run.rec.volume).sum(0)
    assert (vol > 0).all(), "every symbol trades"
    assert run.check.ticks == 150


def test_symbols_trade_on_their_own_tick_grids():
    cfg = make_config(**{
        "market.symbols": ["ACME", "BOLT"], "market.tick_sizes": [0.01, 0.05],
        "market.initial_prices": [100.0, 20.0], "population.noise.count": 20,
        "population.market_maker.count": 4,
    })
    run = run_sim(cfg, ticks=150)
    book = run.sim.engine.resting_orders()
    ticks = np.array([100, 500])
    assert (book["price"] % ticks[book["symbol"]] == 0).all()
    last = np.array(run.rec.last)
    assert (last % ticks == 0).all()
    assert 90 < last[-1, 0] / 10_000 < 110 and 15 < last[-1, 1] / 10_000 < 25
    assert (np.array(run.rec.volume).sum(0) > 0).all()


def test_systems_compile_once_per_shape():
    cfg = make_config()
    world = build_world(cfg)
    schedule = tuple(
        dataclasses.replace(s, fn=chex.assert_max_traces(s.fn, n=1)) if s.fn is decide_orders else s
        for s in DEFAULT_SCHEDULE
    )
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static), schedule)
    buckets = set()
    for _ in range(60):
        sim.step()
        buckets.add(sim.host.last_match.fills.qty.shape[0])
    read, _, write = sim.segments
    # One program for the read phase: admission's fast variant (no pool overflowed).
    assert read.fast._cache_size() + read.call._cache_size() == 1
    # The write phase compiles once per power-of-two padding bucket, not once per tick.
    assert write.call._cache_size() <= 3
    chex.clear_trace_counter()


def test_segments_compile_with_the_cpu_options():
    from qtg.core.schedule import compiler_options

    cfg = make_config(**{"population.sector_rotator": {"count": 500}})
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    assert compiler_options() == {"xla_cpu_experimental_ynn_fusion_type": ""}
    text = sim.segments[0].call.lower(sim.static, sim.params, sim.state, Frame()).compile().as_text()
    # The sector rotator's max over its [500, 10] weights is a reduction XLA would
    # otherwise give to its YNNPACK library.
    assert "fusion" in text and "__ynn_fusion" not in text


def test_read_phase_writes_no_state():
    cfg = make_config()
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    for _ in range(5):
        sim.step()
    read = sim.segments[0]
    assert not read.writes
    frame = read.call(sim.static, sim.params, sim.state, Frame())
    assert frame.orders.valid.shape == (sim.static.batch_rows,)

    def scribble(static, params, state, frame, key):
        return state.replace(tick=state.tick + 100), frame

    # A stage marked read-only cannot write, whatever it returns.
    schedule = (Stage("scribble", scribble, writes=False),) + DEFAULT_SCHEDULE
    sim2 = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static), schedule)
    sim2.step()
    assert int(sim2.state.tick) == 1


def test_a_custom_stage_plugs_into_the_schedule():
    """The schedule is data: an experiment can add a system without editing the loop."""

    def count_quotes(static, params, state, frame, key):
        return state, frame.replace(extra={"quotes": frame.orders.valid.sum()})

    schedule = DEFAULT_SCHEDULE[:3] + (Stage("count", count_quotes, writes=False),) + DEFAULT_SCHEDULE[3:]
    cfg = make_config()
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static), schedule)
    r = sim.step()
    assert [s.names for s in sim.segments][0] == ("observe", "decide", "admit", "count", "arrive")
    assert r.accepted == 2 * world.static.kind("market_maker").count


def test_segments_return_only_the_frame_fields_they_fill():
    """An output that is an input would be copied: each jitted segment hands back only
    what its stages filled, and the write segment gets the read segment's and the
    engine's fields without the read segment's inputs growing."""
    cfg = make_config()
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    sim.step()
    read, match, write = sim.segments
    filled = lambda f: {n for n in Frame.__dataclass_fields__ if getattr(f, n) is not None}  # noqa: E731
    out = read.fast(sim.static, sim.params, sim.state, Frame())
    assert filled(out) == {"view", "indicators", "orders", "kind_state", "delay_push", "reject_reason", "rejects",
                           "borrow_fits", "priority"}
    assert out.priority.shape == out.orders.valid.shape and out.priority.dtype == jnp.uint32
    _, frame = read(sim.static, sim.params, sim.state, Frame(), sim.host)
    _, frame = match(sim.static, sim.params, sim.state, frame, sim.host)
    state = jax.tree.map(jnp.copy, sim.state)  # the write segment donates its state
    _, out = write.call(sim.static, sim.params, state, frame)
    assert filled(out) == {"events", "marks", "equity_by_kind"}
    assert filled(frame.merge(out)) == filled(frame) | filled(out)


def test_a_fast_variant_must_sit_in_a_read_only_segment():
    from qtg.core.schedule import admit, compile_schedule, compose

    writing = dataclasses.replace(admit, writes=True)
    with pytest.raises(ValueError, match="read-only segment"):
        compile_schedule(compose(*DEFAULT_SCHEDULE[:2], writing, *DEFAULT_SCHEDULE[3:]))
    with pytest.raises(ValueError, match="unique"):
        compose(*DEFAULT_SCHEDULE, admit)


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_market_makers_quote_both_sides_on_the_grid(default_run, side):
    book = default_run.sim.engine.resting_orders()
    mm = default_run.sim.static.kind("market_maker")
    mine = (book["agent"] >= mm.start) & (book["agent"] < mm.stop) & (book["side"] == side)
    assert mine.any()
    assert (book["price"][mine] % 100 == 0).all()


def test_the_world_feeds_every_tick_bar_to_the_indicators():
    from components.indicators import IndicatorSpec
    from qtg.hooks import Recorder
    from systems.indicators import init_indicators, read_indicators, update_indicators

    cfg = make_config()
    world = build_world(cfg)
    spec = world.static.indicators.merge(IndicatorSpec(sma=(5,), rsi=(14,), atr=(14,), macd=((12, 26, 9),)))
    static = dataclasses.replace(world.static, indicators=spec)
    state = world.state.replace(indicators=init_indicators(spec, static.n_symbols))
    sim = Simulation(static, world.params, state, make_engine_for(cfg, static))
    rec = Recorder()
    sim.run(60, hooks=[rec])
    h = rec.arrays()
    assert (h["high"] > h["low"]).any(), "some ticks trade across several prices"

    ref = init_indicators(spec, static.n_symbols)
    for close, high, low in zip(h["last"], h["high"], h["low"]):
        ref = update_indicators(spec, ref, close / 1e4, high / 1e4, low / 1e4)
    got, want = read_indicators(spec, sim.state.indicators), read_indicators(spec, ref)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-12)
    rsi, ready = got.rsi_at(14)
    assert bool(ready[0]) and 0 < float(rsi[0]) < 100

    # The read phase hands decide the same values.
    frame = sim.segments[0].call(sim.static, sim.params, sim.state, Frame())
    np.testing.assert_array_equal(np.asarray(frame.indicators.rsi_at(14)[0]), np.asarray(rsi))


def test_risk_statistics_follow_each_agents_equity_path():
    from systems.measure import equity
    from systems.risk import risk_metrics

    class EquityPath:
        def on_start(self, sim):
            self.path = [np.asarray(equity(sim.state))]

        def on_tick(self, sim, r):
            self.path.append(np.asarray(equity(sim.state)))

        def on_end(self, sim):
            pass

    cfg = make_config()
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    rec = EquityPath()
    sim.run(120, hooks=[rec])
    path = np.array(rec.path)  # [T+1, N], the opening equity first
    m = jax.tree.map(np.asarray, risk_metrics(sim.static.risk, sim.state.risk))

    peak = np.maximum.accumulate(path, axis=0)
    np.testing.assert_allclose(m.max_drawdown, ((peak - path) / peak).max(axis=0), rtol=1e-9, atol=1e-15)
    returns = path[1:] / path[:-1] - 1
    np.testing.assert_allclose(m.sharpe, returns.mean(0) / returns.std(0, ddof=1), rtol=1e-6)
    assert m.sharpe_ready.all() and m.var_ready.all()
    window = returns[-sim.static.risk.var_window :].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(m.var, -np.quantile(window, 1 - sim.static.risk.var_confidence, axis=0), rtol=1e-5, atol=1e-9)


def test_chart_indicators_replay_the_recorded_bars(default_run):
    from components.indicators import IndicatorSpec
    from qtg.reports.summary import CHART_INDICATORS, indicators_of
    from systems.indicators import init_indicators, read_indicators, update_indicators

    ind = indicators_of(default_run.rec.arrays())
    (bp, bk), rp, mp = CHART_INDICATORS["bollinger"], CHART_INDICATORS["rsi"], CHART_INDICATORS["macd"]
    spec = IndicatorSpec(rsi=(rp,), macd=(mp,), bollinger=((bp, bk),))
    h = default_run.rec.arrays()
    state = init_indicators(spec, default_run.sim.static.n_symbols)
    for close, high, low in zip(h["last"], h["high"], h["low"]):
        state = update_indicators(spec, state, close / 1e4, high / 1e4, low / 1e4)
    last = read_indicators(spec, state)
    assert ind["rsi"][-1, 0] == pytest.approx(float(last.rsi_at(rp)[0][0]), rel=1e-12)
    assert ind["bb_upper"][-1, 0] == pytest.approx(float(last.bollinger_at(bp, bk).upper[0]), rel=1e-12)
    assert ind["macd_signal"][-1, 0] == pytest.approx(float(last.macd_at(*mp).signal[0]), rel=1e-12)
    # Blank (NaN) exactly until each series is ready: RSI from bar p, Bollinger from p-1.
    assert np.isnan(ind["rsi"][:rp, 0]).all() and not np.isnan(ind["rsi"][rp:, 0]).any()
    assert np.isnan(ind["bb_middle"][: bp - 1, 0]).all() and not np.isnan(ind["bb_middle"][bp - 1 :, 0]).any()
