"""Fundamentals and news: Gordon values against hand-computed numbers, scheduled events
moving exactly what they should, random arrivals (rate, minimum interval, determinism),
and config errors naming the key.

The stage is driven with a minimal stand-in for the world (``State``/``Params`` below
carry only the fields ``update_fundamentals`` reads).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

import qtg  # noqa: F401  (x64 on)
from components.frame import Frame
from components.fundamentals import (
    EVENT_FIELDS,
    EVENT_KINDS,
    NEVER,
    FundamentalsState,
    NewsParams,
)
from qtg.core.config import Config, NewsKindConfig, ScheduledEvent
from qtg.core.news import (
    check_news_config,
    check_schedule_in_run,
    event_rows,
    make_fundamentals,
)
from systems.fundamentals import calibrated_eps, eps_walk, gordon_fair_value, update_fundamentals

F = {name: i for i, name in enumerate(EVENT_FIELDS)}
K = {name: i for i, name in enumerate(EVENT_KINDS)}
SCALE = 10_000


@struct.dataclass
class State:
    fundamentals: FundamentalsState
    tick: jax.Array


@struct.dataclass
class Params:
    news: NewsParams


def gordon(eps, payout, g, r, erp, min_spread=0.01, lo=2.0, hi=60.0):
    return float(gordon_fair_value(eps, g, payout, r, erp, min_spread, lo, hi))


# ---------------------------------------------------------------------------------------
# Gordon growth value


def test_gordon_hand_values():
    # D1 = 5 * 0.5 * 1.03 = 2.575; k - g = 0.09 - 0.03 = 0.06; 2.575 / 0.06 = 42.91666...
    assert gordon(5.0, 0.5, 0.03, 0.04, 0.05) == pytest.approx(42.916666666666664, rel=1e-15)
    # D1 = 2 * 0.6 * 1.02 = 1.224; k - g = 0.07 - 0.02 = 0.05 -> 24.48
    assert gordon(2.0, 0.6, 0.02, 0.03, 0.04) == pytest.approx(24.48, rel=1e-14)


def test_gordon_fallback_when_rate_not_above_growth():
    # k = 0.07 < g = 0.08: spread = min_spread 0.01; D1 = 2 * 0.6 * 1.08 = 1.296 -> 129.6
    assert gordon(2.0, 0.6, 0.08, 0.03, 0.04, hi=100.0) == pytest.approx(129.6, rel=1e-14)
    # k == g: the same fallback, D1 = 2 * 0.6 * 1.07 = 1.284 -> 128.4
    assert gordon(2.0, 0.6, 0.07, 0.03, 0.04, hi=100.0) == pytest.approx(128.4, rel=1e-14)
    # k - g = 0.005 below min_spread 0.01: D1 = 2 * 0.6 * 1.065 = 1.278 -> 127.8
    assert gordon(2.0, 0.6, 0.065, 0.03, 0.04, hi=100.0) == pytest.approx(127.8, rel=1e-14)
    # a wider guard: min_spread 0.02 -> 1.278 / 0.02 = 63.9
    assert gordon(2.0, 0.6, 0.065, 0.03, 0.04, min_spread=0.02, hi=100.0) == pytest.approx(63.9, rel=1e-14)


def test_gordon_pe_bounds_both_ends():
    # upper: D1 = 1 * 1 * 1.04 = 1.04, spread 0.01 -> 104 > 60 * eps = 60
    assert gordon(1.0, 1.0, 0.04, 0.01, 0.04) == 60.0
    # lower: D1 = 10 * 0.1 * 1 = 1, spread 0.2 -> 5 < 2 * eps = 20
    assert gordon(10.0, 0.1, 0.0, 0.1, 0.1) == 20.0
    # inside the bounds it is untouched: 42.9166 / 5 = P/E 8.58
    assert gordon(5.0, 0.5, 0.03, 0.04, 0.05, lo=8.5, hi=8.6) == pytest.approx(42.916666666666664, rel=1e-15)


def test_gordon_non_positive_eps_is_zero():
    assert gordon(0.0, 0.5, 0.03, 0.04, 0.05) == 0.0
    assert gordon(-3.0, 0.5, 0.03, 0.04, 0.05) == 0.0


def test_gordon_vectorised():
    eps = jnp.array([5.0, 2.0, 1.0, 10.0, -3.0])
    payout = jnp.array([0.5, 0.6, 1.0, 0.1, 0.5])
    g = jnp.array([0.03, 0.08, 0.04, 0.0, 0.03])
    rate = jnp.array([0.04, 0.03, 0.01, 0.1, 0.04])
    erp = jnp.array([0.05, 0.04, 0.04, 0.1, 0.05])
    out = gordon_fair_value(eps, g, payout, rate, erp, 0.01, 2.0, 100.0)
    np.testing.assert_allclose(out, [2.575 / 0.06, 129.6, 100.0, 20.0, 0.0], rtol=1e-14)


def test_calibrated_eps_round_trips_to_price():
    price = jnp.array([100.0, 55.5, 12.34, 250.0])
    growth = jnp.array([0.04, 0.0, 0.085, -0.02])  # the third uses the min_spread fallback
    payout = jnp.array([0.5, 0.3, 0.9, 1.0])
    eps = calibrated_eps(price, growth, payout, 0.03, 0.05, 0.01)
    back = gordon_fair_value(eps, growth, payout, 0.03, 0.05, 0.01, 0.0, 1e9)
    np.testing.assert_allclose(back, price, rtol=1e-13)
    # e.g. the first: 100 * (0.08 - 0.04) / (0.5 * 1.04) = 7.6923...
    assert float(eps[0]) == pytest.approx(100 * 0.04 / 0.52, rel=1e-14)


# ---------------------------------------------------------------------------------------
# The stage, on a world built from the config


def quiet_config(*scheduled, **kinds) -> Config:
    """Default market (10 symbols, 5 sectors of two); no random news unless given, and no
    random walk of the fundamentals (``walk_config`` for that)."""
    cfg = Config()
    cfg.fundamentals.volatility = cfg.fundamentals.jump_rate = 0.0
    for k in EVENT_KINDS:
        setattr(cfg.news, k, kinds.get(k, NewsKindConfig(rate=0.0, sentiment=getattr(cfg.news, k).sentiment,
                                                        duration=getattr(cfg.news, k).duration)))
    cfg.news.scheduled = list(scheduled)
    return cfg


def build(cfg: Config):
    m = cfg.market
    news, fund = make_fundamentals(cfg, len(m.symbols), m.sector_names(), m.sector_of(), m.ticks())
    return Params(news=news), State(fundamentals=fund, tick=jnp.asarray(0, jnp.int64))


@jax.jit
def step(params, state, key):
    state, frame = update_fundamentals(None, params, state, Frame(), key)
    return state.replace(tick=state.tick + 1), frame.events


def run(params, state, ticks: int, seed: int = 0):
    """Ticks 0..ticks-1; returns per tick the fundamentals after it and its record."""
    out = []
    for t in range(ticks):
        assert int(state.tick) == t
        state, events = step(params, state, jax.random.key(seed * 1_000_003 + t))
        out.append((jax.tree.map(np.asarray, state.fundamentals), np.asarray(events)))
    return out


def sym(name: str) -> int:
    return Config().market.symbols.index(name)


def test_opening_fair_value_is_initial_price():
    params, state = build(quiet_config())
    f = state.fundamentals
    np.testing.assert_allclose(f.fair, 1_000_000.0, rtol=1e-13)
    # calibrated EPS: 100 * (0.04 + 0.05 - 0.04) / (0.5 * 1.04)
    np.testing.assert_allclose(f.eps, 100 * 0.05 / 0.52, rtol=1e-14)
    assert f.sentiment.shape == (4, 10) and (np.asarray(f.last_event) == NEVER).all()
    assert params.news.tick.shape == (0,)


def test_quiet_ticks_change_nothing():
    params, state = build(quiet_config())
    for f, events in run(params, state, 3):
        assert events.shape == (len(EVENT_FIELDS), 4)
        assert (events[F["valid"]] == 0).all()
        np.testing.assert_allclose(f.fair, 1_000_000.0, rtol=1e-13)


def test_earnings_event_moves_eps_by_its_factor_at_its_tick():
    cfg = quiet_config(ScheduledEvent(kind="earnings", tick=3, target="CRUX", size=0.1))
    params, state = build(cfg)
    eps0 = np.asarray(state.fundamentals.eps)
    out = run(params, state, 5)
    for t in range(3):
        np.testing.assert_array_equal(out[t][0].eps, eps0)
        assert out[t][1][F["valid"], 4] == 0
    f, events = out[3]
    c = sym("CRUX")
    expected = eps0.copy()
    expected[c] = eps0[c] * 1.1
    np.testing.assert_array_equal(f.eps, expected)
    # Gordon value scales with EPS: 100 * 1.1 = 110; sentiment 0.5 * 0.1 = 0.05 -> 115.5
    assert f.fair[c] == pytest.approx(1_155_000.0, rel=1e-13)
    others = np.arange(10) != c
    np.testing.assert_allclose(f.fair[others], 1_000_000.0, rtol=1e-13)
    assert f.sentiment[K["earnings"], c] == pytest.approx(0.05, rel=1e-15)
    ev = events[:, 4]
    assert ev[F["valid"]] == 1 and ev[F["kind"]] == K["earnings"] and ev[F["target"]] == c
    assert ev[F["size"]] == 0.1
    assert ev[F["fair_before"]] == pytest.approx(1_000_000.0, rel=1e-13)
    assert ev[F["fair_after"]] == pytest.approx(1_155_000.0, rel=1e-13)
    assert (events[F["valid"], :4] == 0).all()
    # the next tick: EPS stays, sentiment decays by exp(-1/200)
    f4 = out[4][0]
    np.testing.assert_array_equal(f4.eps, expected)
    assert f4.sentiment[K["earnings"], c] == pytest.approx(0.05 * math.exp(-1 / 200), rel=1e-14)
    assert out[4][1][F["valid"], 4] == 0


def test_guidance_event_moves_growth():
    cfg = quiet_config(ScheduledEvent(kind="guidance", tick=2, target="BOLT", size=0.01))
    params, state = build(cfg)
    f, events = run(params, state, 3)[2]
    b = sym("BOLT")
    growth = np.full(10, 0.04)
    growth[b] = 0.04 + 0.01
    np.testing.assert_array_equal(f.growth, growth)
    # eps = 100 * 0.05 / 0.52; D1 = eps * 0.5 * 1.05; spread 0.09 - 0.05 = 0.04; sentiment 2 * 0.01
    hand = 100 * 0.05 / 0.52 * 0.5 * 1.05 / 0.04 * 1.02 * SCALE
    assert f.fair[b] == pytest.approx(hand, rel=1e-13)
    assert hand == pytest.approx(1_287_259.6153846, rel=1e-12)
    ev = events[:, 4]
    assert (ev[F["valid"]], ev[F["kind"]], ev[F["target"]]) == (1, K["guidance"], b)
    assert ev[F["fair_after"]] == pytest.approx(hand, rel=1e-13)


def test_rate_hike_lowers_every_fair_value():
    cfg = quiet_config(ScheduledEvent(kind="rate", tick=1, target="ignored", size=0.01))
    params, state = build(cfg)
    out = run(params, state, 2)
    f, events = out[1]
    assert float(f.rate) == pytest.approx(0.05, rel=1e-15)
    assert (f.fair < out[0][0].fair).all()
    # spread 0.05 + 0.05 - 0.04 = 0.06: 100 * 0.05 / 0.06 = 83.333...
    np.testing.assert_allclose(f.fair, 100 * 0.05 / 0.06 * SCALE, rtol=1e-13)
    ev = events[:, 4]
    assert (ev[F["valid"]], ev[F["kind"]], ev[F["target"]], ev[F["size"]]) == (1, K["rate"], -1, 0.01)
    assert ev[F["fair_before"]] == pytest.approx(1_000_000.0, rel=1e-13)
    assert ev[F["fair_after"]] == pytest.approx(100 * 0.05 / 0.06 * SCALE, rel=1e-13)


def test_rate_is_floored_at_zero():
    cfg = quiet_config(ScheduledEvent(kind="rate", tick=0, size=-0.5))
    params, state = build(cfg)
    f, _ = run(params, state, 1)[0]
    assert float(f.rate) == 0.0
    # spread max(0 + 0.05 - 0.04, 0.01) = 0.01: 100 * 0.05 / 0.01 = 500, within P/E 60 * 9.6 = 577
    np.testing.assert_allclose(f.fair, 500 * SCALE, rtol=1e-13)


def test_sector_news_moves_only_its_sector_and_decays():
    cfg = quiet_config(ScheduledEvent(kind="sector", tick=2, target="energy", size=-0.2))
    params, state = build(cfg)
    out = run(params, state, 8)
    energy = np.array([s == "energy" for s in cfg.market.sectors])
    assert energy.sum() == 2
    decay = math.exp(-1 / 200)
    for t, (f, events) in enumerate(out):
        np.testing.assert_allclose(f.fair[~energy], 1_000_000.0, rtol=1e-13)
        np.testing.assert_allclose(f.eps, 100 * 0.05 / 0.52, rtol=1e-14)
        if t < 2:
            np.testing.assert_allclose(f.fair[energy], 1_000_000.0, rtol=1e-13)
            continue
        mood = -0.2 * decay ** (t - 2)
        np.testing.assert_allclose(f.sentiment[K["sector"], energy], mood, rtol=1e-13)
        assert (f.sentiment[K["sector"], ~energy] == 0).all()
        np.testing.assert_allclose(f.fair[energy], 1_000_000.0 * (1 + mood), rtol=1e-13)
    ev = out[2][1][:, 4]
    sector = cfg.market.sector_names().index("energy")
    assert (ev[F["valid"]], ev[F["kind"]], ev[F["target"]], ev[F["size"]]) == (1, K["sector"], sector, -0.2)
    assert ev[F["fair_after"]] == pytest.approx(800_000.0, rel=1e-13)
    rows = event_rows(out[2][1], 2, cfg.market.symbols, cfg.market.sector_names(), cfg.market.sector_of())
    assert rows == [(2, "sector", "energy", -0.2, "CRUX;DYNE", pytest.approx(100.0), pytest.approx(80.0))]


def test_events_in_one_tick_compose_and_sentiment_is_clipped():
    cfg = quiet_config(
        ScheduledEvent(kind="earnings", tick=0, target="ACME", size=0.1),
        ScheduledEvent(kind="earnings", tick=0, target="ACME", size=-0.5),
        ScheduledEvent(kind="sector", tick=0, target="health", size=-5.0),
        ScheduledEvent(kind="earnings", tick=1, target="JADE", size=0.2),
    )
    params, state = build(cfg)
    eps0 = float(state.fundamentals.eps[0])
    f, events = run(params, state, 1)[0]
    assert events.shape == (len(EVENT_FIELDS), 8)
    np.testing.assert_array_equal(events[F["valid"]], [0, 0, 0, 0, 1, 1, 1, 0])
    assert f.eps[0] == eps0 * 1.1 * 0.5
    # ACME: 100 * 0.55 * (1 + 0.5 * (0.1 - 0.5)) = 44
    assert f.fair[0] == pytest.approx(440_000.0, rel=1e-13)
    health = np.array([s == "health" for s in cfg.market.sectors])
    # total sentiment -5 is clipped to -0.9: 100 * 0.1 = 10
    np.testing.assert_allclose(f.fair[health], 100_000.0, rtol=1e-13)


def test_fair_value_floor_is_one_tick():
    cfg = quiet_config()
    cfg.fundamentals.eps_each = [-1.0] + [100 * 0.05 / 0.52] * 9
    params, state = build(cfg)
    assert float(state.fundamentals.fair[0]) == 100.0  # tick size 0.01 = 100 units
    f, _ = run(params, state, 1)[0]
    assert f.fair[0] == 100.0
    assert f.fair[1] == pytest.approx(1_000_000.0, rel=1e-13)


# ---------------------------------------------------------------------------------------
# Random arrivals


RATES = np.array([0.05, 0.1, 0.02, 0.2])
MIN_INTERVAL = np.array([0, 5, 20, 3])


def random_world():
    """4 symbols in 2 sectors; every kind arrives at random; no scheduled events; no walk."""
    cfg = Config()
    cfg.fundamentals.volatility = cfg.fundamentals.jump_rate = 0.0
    cfg.market.symbols = ["A", "B", "C", "D"]
    cfg.market.sectors = ["x", "x", "y", "y"]
    for k, rate, gap in zip(EVENT_KINDS, RATES, MIN_INTERVAL):
        setattr(cfg.news, k, NewsKindConfig(rate=float(rate), min_interval=int(gap), mean=0.001,
                                            std=0.01, sentiment=0.5, duration=50))
    return build(cfg)


@jax.jit
def scan_run(params, state, key, ticks_like):
    def body(state, key):
        state, events = step(params, state, key)
        return state, events

    return jax.lax.scan(body, state, jax.random.split(key, ticks_like.shape[0]))


T = 20_000


@pytest.fixture(scope="module")
def random_run():
    params, state = random_world()
    final, events = scan_run(params, state, jax.random.key(7), jnp.zeros(T))
    return params, state, final, np.asarray(events)


def test_random_frequency_and_min_interval(random_run):
    _, _, _, events = random_run
    assert events.shape == (T, len(EVENT_FIELDS), 4)
    for k in range(4):
        ticks = np.flatnonzero(events[:, F["valid"], k])
        # renewal: after an event, min_interval ticks pass, then a geometric wait
        mean_gap = MIN_INTERVAL[k] + (1 - RATES[k]) / RATES[k]
        expected = T / mean_gap
        assert abs(len(ticks) - expected) < 0.2 * expected, (EVENT_KINDS[k], len(ticks), expected)
        assert np.diff(ticks).min() >= max(MIN_INTERVAL[k], 1)
        if MIN_INTERVAL[k] > 0:
            assert np.diff(ticks).min() == MIN_INTERVAL[k]  # the bound is reached, not exceeded
        assert (events[ticks, F["kind"], k] == k).all()
        size = events[ticks, F["size"], k]
        assert abs(size.mean() - 0.001) < 5 * 0.01 / np.sqrt(len(ticks))
        assert 0.007 < size.std() < 0.013
    targets = {k: events[np.flatnonzero(events[:, F["valid"], k]), F["target"], k] for k in range(4)}
    assert set(targets[K["earnings"]]) == {0, 1, 2, 3}
    assert set(targets[K["guidance"]]) == {0, 1, 2, 3}
    assert set(targets[K["sector"]]) == {0, 1}
    assert set(targets[K["rate"]]) == {-1}


def test_random_events_apply_their_effects(random_run):
    _, state, final, events = random_run
    f0, f = state.fundamentals, final.fundamentals
    valid = events[:, F["valid"]] > 0
    for s in range(4):
        hit = valid[:, K["earnings"]] & (events[:, F["target"], K["earnings"]] == s)
        factor = np.prod(1 + events[hit, F["size"], K["earnings"]])
        assert float(f.eps[s]) == pytest.approx(float(f0.eps[s]) * factor, rel=1e-12)
        hit = valid[:, K["guidance"]] & (events[:, F["target"], K["guidance"]] == s)
        assert float(f.growth[s]) == pytest.approx(0.04 + events[hit, F["size"], K["guidance"]].sum(), abs=1e-12)
    assert int(final.tick) == T
    assert int(f.last_event[K["rate"]]) == np.flatnonzero(valid[:, K["rate"]])[-1]


def test_random_events_are_deterministic(random_run):
    params, state, _, events = random_run
    _, again = scan_run(params, state, jax.random.key(7), jnp.zeros(T))
    np.testing.assert_array_equal(np.asarray(again), events)
    _, other = scan_run(params, state, jax.random.key(8), jnp.zeros(T))
    assert not np.array_equal(np.asarray(other)[:, F["valid"]], events[:, F["valid"]])


def test_stage_compiles_once():
    params, state = build(quiet_config(ScheduledEvent(kind="sector", tick=1, target="tech", size=0.1)))
    before = step._cache_size()
    run(params, state, 4)
    assert step._cache_size() - before <= 1


# ---------------------------------------------------------------------------------------
# Config errors


def bad(change) -> str:
    cfg = quiet_config()
    change(cfg)
    with pytest.raises(ValueError) as e:
        check_news_config(cfg)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("change, start", [
    # The default's opening P/E is 0.5 * 1.04 / (0.04 + 0.05 - 0.04) = 10.4 for every symbol.
    (lambda c: setattr(c.fundamentals, "pe_bounds", [2.0, 10.39]), "fundamentals.pe_bounds: ACME's opening P/E is 10.4"),
    (lambda c: setattr(c.fundamentals, "pe_bounds", [10.41, 60.0]), "fundamentals.pe_bounds: ACME's opening P/E is 10.4"),
    (lambda c: setattr(c.fundamentals, "payout", 0.0), "fundamentals.payout: must be > 0 to calibrate"),
    (lambda c: setattr(c.news.earnings, "duration", 0), "news.earnings.duration: must be >= 1, got 0"),
    (lambda c: c.news.scheduled.append(ScheduledEvent(kind="sector", tick=500, target="media", size=-0.2)),
     "news.scheduled[0].target: unknown sector 'media'; allowed: tech, energy, health, finance, consumer"),
])
def test_check_config_accepts_the_default_and_refuses_it_changed(change, start):
    """The default passes, and the same config with one default changed does not: the check
    reads the default's values (a check that passed anything would fail here)."""
    cfg = Config()
    assert check_news_config(cfg) is None
    change(cfg)
    with pytest.raises(ValueError) as e:
        check_news_config(cfg)
    assert str(e.value).startswith(start)


def test_check_config_accepts_the_default_at_its_bounds():
    cfg = Config()
    cfg.fundamentals.pe_bounds = [10.4, 10.4]  # exactly the opening P/E
    assert check_news_config(cfg) is None


def test_scheduled_events_must_fall_within_the_run():
    cfg = Config()
    cfg.news.scheduled = [ScheduledEvent(kind="earnings", tick=10, target="ACME", size=0.05),
                          ScheduledEvent(kind="earnings", tick=cfg.run.ticks - 1, target="BOLT", size=0.05)]
    assert check_schedule_in_run(cfg) is None
    cfg.news.scheduled.append(ScheduledEvent(kind="rate", tick=cfg.run.ticks, size=0.01))
    with pytest.raises(ValueError) as e:
        check_schedule_in_run(cfg)
    assert str(e.value) == ("news.scheduled[2].tick: 1000 is past run.ticks (1000); the rate event would never "
                            "happen (ticks run 0 to 999): move it or raise run.ticks")
    assert check_news_config(cfg) is None  # past the run is the run's concern, not the news check's
    cfg.run.ticks = 1001
    assert check_schedule_in_run(cfg) is None


@pytest.mark.parametrize("change, start", [
    (lambda c: setattr(c.fundamentals, "payout", 1.5), "fundamentals.payout: must be in [0, 1]"),
    (lambda c: setattr(c.fundamentals, "payout", 0.0), "fundamentals.payout: must be > 0 to calibrate"),
    (lambda c: setattr(c.fundamentals, "payout_each", [0.5] * 3), "fundamentals.payout_each: needs one value per symbol (10), got 3"),
    (lambda c: setattr(c.fundamentals, "growth_each", [0.1] * 9 + [-1.5]), "fundamentals.growth_each: must be finite and > -1"),
    (lambda c: setattr(c.fundamentals, "eps_each", [1.0]), "fundamentals.eps_each: needs one value per symbol"),
    (lambda c: setattr(c.fundamentals, "min_spread", 0.0), "fundamentals.min_spread: must be > 0"),
    (lambda c: setattr(c.fundamentals, "pe_bounds", [60.0, 2.0]), "fundamentals.pe_bounds: must be [lo, hi] with 0 < lo <= hi"),
    (lambda c: setattr(c.fundamentals, "pe_bounds", [0.0, 2.0]), "fundamentals.pe_bounds: must be [lo, hi]"),
    (lambda c: setattr(c.fundamentals, "pe_bounds", [2.0, 5.0]), "fundamentals.pe_bounds: ACME's opening P/E is 10.4"),
    (lambda c: setattr(c.fundamentals, "rate", float("nan")), "fundamentals.rate: must be finite"),
    (lambda c: setattr(c.fundamentals, "erp", float("inf")), "fundamentals.erp: must be finite"),
    (lambda c: setattr(c.news.earnings, "rate", 1.5), "news.earnings.rate: must be in [0, 1]"),
    (lambda c: setattr(c.news.guidance, "std", -0.1), "news.guidance.std: must be >= 0"),
    (lambda c: setattr(c.news.rate, "duration", 0), "news.rate.duration: must be >= 1"),
    (lambda c: setattr(c.news.sector, "min_interval", -1), "news.sector.min_interval: must be >= 0"),
    (lambda c: setattr(c.news, "scheduled", [ScheduledEvent(kind="merger", tick=1, target="ACME")]),
     "news.scheduled[0].kind: unknown kind 'merger'; allowed: earnings, guidance, rate, sector"),
    (lambda c: setattr(c.news, "scheduled", [ScheduledEvent(kind="rate"), ScheduledEvent(kind="sector", tick=-1, target="tech")]),
     "news.scheduled[1].tick: must be >= 0"),
    (lambda c: setattr(c.news, "scheduled", [ScheduledEvent(kind="earnings", tick=5, target="NOPE")]),
     "news.scheduled[0].target: unknown symbol 'NOPE'; allowed: ACME, BOLT"),
    (lambda c: setattr(c.news, "scheduled", [ScheduledEvent(kind="sector", tick=5, target="ACME")]),
     "news.scheduled[0].target: unknown sector 'ACME'; allowed: tech, energy, health, finance, consumer"),
    (lambda c: setattr(c.news, "scheduled", [ScheduledEvent(kind="earnings", tick=5, target="ACME", size=-1.0)]),
     "news.scheduled[0].size: an earnings surprise must be > -1"),
])
def test_check_config_names_the_key(change, start):
    assert bad(change).startswith(start)


def test_make_fundamentals_rejects_unknown_target():
    cfg = quiet_config(ScheduledEvent(kind="guidance", tick=1, target="tech", size=0.01))
    with pytest.raises(ValueError, match=r"^news\.scheduled\[0\]\.target: unknown symbol 'tech'"):
        build(cfg)


# ---------------------------------------------------------------------------------------
# The fundamentals' random walk


def walk_config(drift=0.0, volatility=0.0, jump_rate=0.0, jump_std=0.0) -> Config:
    cfg = quiet_config()
    f = cfg.fundamentals
    f.drift, f.volatility, f.jump_rate, f.jump_std = drift, volatility, jump_rate, jump_std
    return cfg


@pytest.mark.parametrize("drift, vol, rate, jump", [(0.0, 0.001, 0.0, 0.0), (2e-4, 5e-4, 0.0, 0.0),
                                                    (-1e-4, 5e-4, 0.01, 0.02)])
def test_eps_walk_has_the_configured_drift_and_variance(drift, vol, rate, jump):
    params, _ = build(walk_config(drift, vol, rate, jump))
    n = 40_000  # draws of 10 symbols each: 400,000 log steps
    keys = jax.random.split(jax.random.key(7), n)
    steps = np.log(np.asarray(jax.vmap(lambda k: eps_walk(params.news, k, 10))(keys))).ravel()
    var = vol**2 + rate * jump**2
    # the sample mean within 5 standard errors of the drift, the variance within 5% of its
    # own (the jumps make the variance of the variance larger: 5% is > 5 standard errors)
    assert abs(steps.mean() - drift) < 5 * math.sqrt(var / steps.size)
    assert steps.var() == pytest.approx(var, rel=0.05)
    kurt = ((steps - steps.mean()) ** 4).mean() / steps.var() ** 2 - 3
    if rate == 0:
        assert abs(kurt) < 0.1  # Gaussian steps
    else:
        # a normal mixture: 3 * rate * jump^4 / var^2 - 3 * ... ; here about 10.3
        expected = 3 * (vol**4 + 2 * rate * vol**2 * jump**2 + rate * jump**4) / var**2 - 3
        assert kurt == pytest.approx(expected, rel=0.25)


def test_fair_value_follows_the_walk_every_tick_and_is_never_flat():
    params, state = build(walk_config(volatility=0.001, jump_rate=0.01, jump_std=0.02))
    out = run(params, state, 200)
    fair = np.array([f.fair for f, _ in out])
    eps = np.array([f.eps for f, _ in out])
    assert (np.diff(fair, axis=0) != 0).all()  # every symbol moves every tick
    # fair value is proportional to EPS (no news: no sentiment, no rate change)
    np.testing.assert_allclose(fair / eps, np.broadcast_to(fair[0] / eps[0], fair.shape), rtol=1e-12)
    steps = np.diff(np.log(fair), axis=0)
    assert 0.0005 < steps.std() < 0.005 and (np.abs(steps) > 0.01).any()  # jumps happened
    # the same keys give the same path (determinism), and no walk leaves EPS exactly alone
    again = np.array([f.fair for f, _ in run(params, state, 200)])
    np.testing.assert_array_equal(fair, again)
    still, state0 = build(walk_config())
    np.testing.assert_array_equal(run(still, state0, 5)[-1][0].eps, state0.fundamentals.eps)


def test_news_move_is_the_events_share_of_the_tick_and_not_the_walks():
    # An earnings beat of 10% at tick 3 (sentiment 0.5 * 0.1 on top), with the walk on.
    cfg = walk_config(volatility=0.001, jump_rate=0.01, jump_std=0.02)
    cfg.news.scheduled = [ScheduledEvent(kind="earnings", tick=3, target="CRUX", size=0.1)]
    params, state = build(cfg)
    out = run(params, state, 6)
    c = sym("CRUX")
    moves = np.array([f.news_move for f, _ in out])
    # The event's share: EPS x 1.1 and sentiment 0.05 on (1 + 0) -> log(1.1 * 1.05).
    assert moves[3, c] == pytest.approx(math.log(1.1 * 1.05), rel=1e-12)
    moves[3, c] = 0.0
    # Every other symbol and tick: the walk and the sentiment's decay are not news.
    np.testing.assert_allclose(moves, 0.0, atol=1e-12)
