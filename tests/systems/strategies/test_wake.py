"""Tier 2 wake conditions: the mask on hand-made arrays, the parametric updates, and a real
world run in which every row of the five reactive kinds wakes exactly on the ticks a slow
pure-Python reference says (price crossings both ways, timers, news subscriptions), with
updates made at tick t in force from t + 1 only; plus conservation and that each kind
trades."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.frame import Frame
from components.fundamentals import (
    EARNINGS,
    EVENT_FIELDS,
    EVENT_KINDS,
    GUIDANCE,
    NEVER,
    RATE,
    SECTOR,
)
from components.orders import OrderType, Reason, Side
from components.wake import ABOVE, ANY, BELOW, EVENT, INTERVAL, OWN
from qtg.core.config import ConfigError, ScheduledEvent
from qtg.core.sim import Simulation
from qtg.core.world import build_world, make_engine_for
from qtg.hooks import Recorder
from systems.observe import observe_market
from systems.strategies import _wake as W
from systems.strategies import sector_rotator, threshold
from tests.support import InvariantCheck, make_config

KEY = jax.random.key(0)
T2 = ("threshold_trader", "stop_loss", "take_profit", "news_reactor", "sector_rotator")
CONDITIONS = ("symbol", "above", "below", "every", "next_tick", "events", "scope")
RECORD = ("seen", "fired_at", "reason")


# ---------------------------------------------------------------------------------------
# The mask on hand-made arrays


def test_wake_mask_on_hand_made_rows():
    # Symbols 0..3; sectors: 0, 0, 1, 1. Tick 10: last closes are i64 units.
    rows = [  # (symbol, above, below, every, next_tick, events, scope, prev, last) -> reason
        ((0, 100, 0, 0, 0, 0, OWN, 99, 100), ABOVE),  # up onto the threshold counts
        ((0, 100, 0, 0, 0, 0, OWN, 100, 101), 0),  # already on it: no crossing
        ((0, 100, 0, 0, 0, 0, OWN, 0, 101), 0),  # no previous close: no crossing
        ((0, 0, 100, 0, 0, 0, OWN, 101, 100), BELOW),  # down onto the threshold counts
        ((0, 0, 100, 0, 0, 0, OWN, 100, 99), 0),
        ((0, 0, 100, 0, 0, 0, OWN, 99, 101), 0),  # crossing up does not wake a BELOW
        ((0, 0, 0, 5, 10, 0, OWN, 99, 100), INTERVAL),  # due now
        ((0, 0, 0, 5, 7, 0, OWN, 99, 100), INTERVAL),  # overdue (not re-armed)
        ((0, 0, 0, 5, 11, 0, OWN, 99, 100), 0),
        ((0, 0, 0, 0, 3, 0, OWN, 99, 100), 0),  # no timer
        ((1, 0, 0, 0, 0, 1 << EARNINGS, OWN, 99, 100), EVENT),  # earnings on symbol 1 at t-1
        ((0, 0, 0, 0, 0, 1 << EARNINGS, OWN, 99, 100), 0),  # not its symbol
        ((1, 0, 0, 0, 0, 1 << GUIDANCE, OWN, 99, 100), 0),  # guidance on 1 is stale (t-2)
        ((0, 0, 0, 0, 0, 1 << SECTOR, 1, 99, 100), EVENT),  # sector news on sector 1
        ((0, 0, 0, 0, 0, 1 << SECTOR, 0, 99, 100), 0),
        ((3, 0, 0, 0, 0, 1 << SECTOR, OWN, 99, 100), EVENT),  # symbol 3 is in sector 1
        ((0, 0, 0, 0, 0, 1 << SECTOR, ANY, 99, 100), EVENT),
        ((0, 0, 0, 0, 0, 1 << GUIDANCE | 1 << RATE, ANY, 99, 100), 0),
        ((0, 0, 0, 0, 0, 1 << EARNINGS, 0, 99, 100), EVENT),  # symbol 1 is in sector 0
        ((2, 100, 0, 4, 9, 1 << SECTOR, OWN, 99, 100), ABOVE | INTERVAL | EVENT),
        ((0, 0, 0, 0, 0, 0, OWN, 99, 100), 0),
    ]
    cols = np.array([r for r, _ in rows], np.int64).T
    w = W.make_wake(cols[0], every=cols[3], next_tick=cols[4], events=cols[5], scope=cols[6])
    w = w.replace(above=jnp.asarray(cols[1]), below=jnp.asarray(cols[2]))
    prev, last = jnp.asarray(cols[7]), jnp.asarray(cols[8])
    tick = jnp.asarray(10, jnp.int64)
    news_tick = np.full((4, 4), NEVER, np.int64)
    news_tick[EARNINGS, 1] = 9
    news_tick[GUIDANCE, 1] = 8
    news_tick[SECTOR, 2:] = 9
    sector_of = jnp.array([0, 0, 1, 1], jnp.int32)
    fired, reason = jax.jit(W.wake_mask)(w, last, prev, tick, jnp.asarray(news_tick), sector_of)
    expected = np.array([r for _, r in rows])
    np.testing.assert_array_equal(np.asarray(reason), expected)
    np.testing.assert_array_equal(np.asarray(fired), expected != 0)
    # Nothing wakes at the opening (tick 0), whatever its conditions.
    news_tick[:] = -1
    fired, reason = W.wake_mask(w, last, prev, jnp.asarray(0, jnp.int64), jnp.asarray(news_tick), sector_of)
    assert not np.asarray(fired).any() and not np.asarray(reason).any()


def test_parametric_updates_change_only_the_selected_rows():
    w = W.make_wake([0, 1, 2], every=[5, 5, 0], next_tick=[3, 3, 0], events=1, scope=OWN)
    sel = jnp.array([True, False, True])
    t = jnp.asarray(20, jnp.int64)
    w2 = W.set_below(W.set_above(w, sel, jnp.array([110, 120, 130])), ~sel, jnp.array([90, 80, 70]))
    assert np.asarray(w2.above).tolist() == [110, 0, 130] and np.asarray(w2.below).tolist() == [0, 80, 0]
    w3 = W.clear_below(W.clear_above(w2, sel), sel)
    assert np.asarray(w3.above).tolist() == [0, 0, 0] and np.asarray(w3.below).tolist() == [0, 80, 0]
    assert np.asarray(W.rearm(w, sel, t).next_tick).tolist() == [25, 3, 20]
    w4 = W.set_interval(w, sel, jnp.array([7, 7, 7]), t)
    assert np.asarray(w4.every).tolist() == [7, 5, 7] and np.asarray(w4.next_tick).tolist() == [27, 3, 27]
    assert np.asarray(W.clear_interval(w, sel).every).tolist() == [0, 5, 0]
    w5 = W.subscribe(w, sel, 0b1000, ANY)
    assert np.asarray(w5.events).tolist() == [8, 1, 8] and np.asarray(w5.scope).tolist() == [ANY, OWN, ANY]
    w6 = W.observe(w, sel, jnp.array([ABOVE, BELOW, EVENT]), t, jnp.array([1, 2, 3]))
    assert np.asarray(w6.seen).tolist() == [1, 2, 3]
    assert np.asarray(w6.fired_at).tolist() == [20, W.NEVER_FIRED, 20]
    assert np.asarray(w6.reason).tolist() == [ABOVE, 0, EVENT]
    assert np.asarray(W.idle(W.make_wake([0, 0], every=[0, 1]))).tolist() == [True, False]
    # Thresholds snap outward to the tick grid.
    lo, hi = W.band(jnp.array([1_000_050.0]), jnp.array([0.001]), jnp.array([500]))
    assert (int(lo[0]), int(hi[0])) == (999_000, 1_001_500)


def test_subscription_masks_and_bad_names():
    assert W.subscription("earnings, sector") == (1 << EARNINGS) | (1 << SECTOR)
    assert W.subscription("rate") == 1 << RATE
    with pytest.raises(ValueError, match="unknown event kind 'news'"):
        W.subscription("earnings,news")
    with pytest.raises(ConfigError, match="population.news_reactor.subscribe: unknown event kind 'gossip'"):
        make_config(**{"population.news_reactor.count": 1, "population.news_reactor.subscribe": "gossip"})
    with pytest.raises(ConfigError, match="population.news_reactor.subscribe: name at least one"):
        make_config(**{"population.news_reactor.count": 1, "population.news_reactor.subscribe": " , "})


def test_sector_weights_match_numpy():
    sentiment = np.array([[0.1, 0.0, -0.05, 0.0, 0.2], [0.0, 0.1, 0.0, 0.0, 0.0]])
    sector_of = np.array([0, 0, 1, 1, 2], np.int32)
    temp = np.array([0.05, 1.0])
    got = sector_rotator.target_weights(jnp.asarray(sentiment), jnp.asarray(sector_of), jnp.asarray(temp))
    got = np.asarray(got)
    score = np.array([0.1, -0.025, 0.2])  # mean total sentiment per sector
    for row, t in zip(got, temp):
        e = np.exp(score / t) / np.exp(score / t).sum()
        np.testing.assert_allclose(row, e[sector_of] / np.bincount(sector_of)[sector_of], rtol=1e-12)
        assert row.sum() == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------
# An update made at tick t is in force from t + 1, crafted on one threshold trader


def test_new_threshold_crossed_in_the_same_tick_is_not_acted_on():
    cfg = make_config(**{"market.symbols": ["ACME"], "population.noise.count": 0,
                         "population.market_maker.count": 0, "population.threshold_trader.count": 1,
                         "population.threshold_trader.band": [0.0005, 0.0005],
                         "population.threshold_trader.size": [10, 10]})
    w = build_world(cfg)
    kind, p = w.static.kind(threshold.KIND), w.params.kinds[threshold.KIND]

    def at(tick, last, bid, ask, wake):
        m = w.state.market.replace(last=jnp.array([last]), bid=jnp.array([bid]), ask=jnp.array([ask]))
        kinds = {threshold.KIND: threshold.State(wake)}
        return w.state.replace(market=m, tick=jnp.asarray(tick, jnp.int64), kinds=kinds)

    def decide(state):
        frame = observe_market(w.static, w.params, state, Frame(), KEY)[1]
        orders, new = threshold.decide(w.static, kind, w.params, p, state, frame, KEY)
        return jax.tree.map(np.asarray, orders), new.wake

    # Tick 5: the close fell from 100.10 to 99.95, through the buy threshold 100.00; the
    # book has recovered (mid 100.00), so the new buy threshold is 99.95: the same tick's
    # closes cross it too.
    wake = W.make_wake([0]).replace(above=jnp.array([1_010_000]), below=jnp.array([1_000_000]),
                                    seen=jnp.array([1_001_000]))
    orders, new = decide(at(5, 999_500, 999_900, 1_000_100, wake))
    assert orders.valid.tolist() == [True] and orders.side[0] == Side.BUY and orders.kind[0] == OrderType.IOC
    assert orders.qty[0] == 10 and orders.price[0] % 100 == 0
    assert int(new.below[0]) == 999_500 and int(new.above[0]) == 1_000_500
    assert int(new.fired_at[0]) == 5 and int(new.reason[0]) == BELOW
    # Under the new conditions the tick-5 closes are a crossing of the new threshold...
    fired, reason = W.wake_mask(new, jnp.array([999_500]), jnp.array([1_001_000]), jnp.asarray(5),
                                jnp.full((4, 1), NEVER), jnp.array([0], jnp.int32))
    assert bool(fired[0]) and int(reason[0]) == BELOW
    # ...but the row acts on it neither at tick 5 (one order, for the old threshold) nor at
    # tick 6, when the new conditions are in force and the close did not move.
    orders, newer = decide(at(6, 999_500, 999_900, 1_000_100, new))
    assert not orders.valid.any() and int(newer.fired_at[0]) == 5
    # It wakes for the new threshold only on a later crossing of its own.
    _, up = decide(at(7, 999_800, 999_700, 999_900, newer))
    orders, down = decide(at(8, 999_400, 999_300, 999_500, up))
    assert int(up.fired_at[0]) == 5 and int(down.fired_at[0]) == 8 and int(down.reason[0]) == BELOW
    assert orders.valid.tolist() == [True] and orders.side[0] == Side.BUY


# ---------------------------------------------------------------------------------------
# A real world run against the slow reference


class WakeLog:
    """Records, after every tick, each tier 2 kind's wake rows (copies: state buffers are
    donated to the next tick) and the tick's news events ``(kind, target)``."""

    def on_start(self, sim):
        self.kinds = [k for k in T2 if k in sim.state.kinds]
        self.start = {k: _snap(sim.state.kinds[k].wake) for k in self.kinds}
        self.after = {k: [] for k in self.kinds}
        self.events = []
        self.positions = []

    def on_tick(self, sim, r):
        for k in self.kinds:
            self.after[k].append(_snap(sim.state.kinds[k].wake))
        ev = dict(zip(EVENT_FIELDS, r.events))
        slots = zip(ev["valid"], ev["kind"], ev["target"])
        self.events.append([(int(k), int(t)) for v, k, t in slots if v > 0])
        self.positions.append(np.array(sim.state.wallet.position))

    def on_end(self, sim):
        pass

    def before(self, kind, t):
        """Conditions in force during tick t: those stored after tick t - 1."""
        return self.start[kind] if t == 0 else self.after[kind][t - 1]

    def fired(self, kind, t):
        """Reason bits of each row's wake at tick t (0: it did not wake)."""
        a = self.after[kind][t]
        return np.where(a["fired_at"] == t, a["reason"], 0)


def _snap(wake):
    return {f: np.array(getattr(wake, f)) for f in CONDITIONS + RECORD}


def affected(kind, target, sector_of):
    """Symbols an event touches (systems.fundamentals), from the event record."""
    n = len(sector_of)
    if kind == RATE:
        return set(range(n))
    if kind == SECTOR:
        return {s for s in range(n) if sector_of[s] == target}
    return {target}


def reference(cond, t, closes, opening, events, sector_of):
    """Slow rule: the reason bits of every row at tick t under conditions ``cond``, from the
    recorded closes [T, S] (close of tick t is closes[t]) and news (events[t]: tick t's)."""
    out = []
    for i in range(len(cond["symbol"])):
        if t == 0:
            out.append(0)
            continue
        s = int(cond["symbol"][i])
        last = int(closes[t - 1][s])
        prev = int(closes[t - 2][s]) if t >= 2 else int(opening[s])
        above, below = int(cond["above"][i]), int(cond["below"][i])
        r = 0
        if above > 0 and prev < above <= last:
            r |= ABOVE
        if below > 0 and prev > below >= last:
            r |= BELOW
        if int(cond["every"][i]) > 0 and t >= int(cond["next_tick"][i]):
            r |= INTERVAL
        scope = int(cond["scope"][i])
        for kind, target in events[t - 1]:
            if not (int(cond["events"][i]) >> kind) & 1:
                continue
            hit = affected(kind, target, sector_of)
            if (scope == OWN and s in hit) or (scope == ANY and hit) or (
                    scope >= 0 and any(sector_of[x] == scope for x in hit)):
                r |= EVENT
        out.append(r)
    return np.array(out)


TICKS = 150


@pytest.fixture(scope="module")
def reactive_run():
    """4 symbols in 2 sectors on two tick grids; market makers, noise traders and a few
    agents of each tier 2 kind (news reactors with a wide collar, so their IOC orders reach
    the book the news moved); random news off, five scheduled events."""
    changes = {
        "market.symbols": ["ACME", "BOLT", "CRUX", "DYNE"],
        "market.sectors": ["tech", "tech", "energy", "energy"],
        "market.tick_sizes": [0.01, 0.05, 0.01, 0.05],
        "population.market_maker.count": 4, "population.noise.count": 24,
        "population.threshold_trader.count": 4, "population.threshold_trader.band": [0.0001, 0.0005],
        "population.stop_loss.count": 4, "population.stop_loss.stop": [0.002, 0.005],
        "population.stop_loss.cooldown": [10, 20],
        "population.take_profit.count": 4, "population.take_profit.target": [0.002, 0.005],
        "population.take_profit.dip": [0.001, 0.003],
        "population.news_reactor.count": 4, "population.news_reactor.subscribe": "earnings,guidance,sector",
        "population.news_reactor.collar": 0.2,  # through a book the news has just moved
        "population.sector_rotator.count": 3, "population.sector_rotator.every": [15, 30],
        "news.scheduled": [
            ScheduledEvent(kind="earnings", tick=30, target="ACME", size=0.1),
            ScheduledEvent(kind="guidance", tick=60, target="BOLT", size=-0.01),
            ScheduledEvent(kind="sector", tick=80, target="energy", size=0.1),
            ScheduledEvent(kind="rate", tick=100, target="", size=0.005),
            ScheduledEvent(kind="sector", tick=120, target="tech", size=-0.1),
        ],
        **{f"news.{k}.rate": 0.0 for k in EVENT_KINDS},
    }
    cfg = make_config(**changes)
    world = build_world(cfg)
    sim = Simulation(world.static, world.params, world.state, make_engine_for(cfg, world.static))
    rec, check, log = Recorder(), InvariantCheck(), WakeLog()
    sim.run(TICKS, hooks=[rec, check, log])
    return sim, rec, check, log, world


def test_rows_wake_exactly_when_the_reference_says(reactive_run):
    sim, rec, _, log, _ = reactive_run
    closes, opening = np.array(rec.last), np.asarray(sim.params.initial_price)
    sector_of = list(sim.static.sector_of)
    news = [e for e in log.events if e]
    assert news == [[(EARNINGS, 0)], [(GUIDANCE, 1)], [(SECTOR, 1)], [(RATE, -1)], [(SECTOR, 0)]]
    seen = {k: 0 for k in T2}
    for kind in T2:
        for t in range(TICKS):
            want = reference(log.before(kind, t), t, closes, opening, log.events, sector_of)
            got = log.fired(kind, t)
            assert (got == want).all(), f"{kind} at tick {t}: woke {got.tolist()}, reference {want.tolist()}"
            seen[kind] |= int(np.bitwise_or.reduce(got))
    # Every kind of condition was exercised, by the kinds that use it.
    assert seen["threshold_trader"] == ABOVE | BELOW
    assert seen["stop_loss"] & BELOW and seen["stop_loss"] & (ABOVE | INTERVAL)
    assert seen["take_profit"] & ABOVE
    assert seen["news_reactor"] == EVENT
    assert seen["sector_rotator"] == INTERVAL | EVENT
    # The remembered close is the close the next tick's crossing test uses.
    for kind in T2:
        a = log.after[kind][TICKS - 1]
        np.testing.assert_array_equal(a["seen"], closes[TICKS - 2][a["symbol"]])


def test_updates_are_in_force_from_the_next_tick_only(reactive_run):
    """Conditions stored at the end of tick t would often have woken a row at t itself: a
    threshold moved to a price between the tick's two closes (the reference price it is
    set around sits inside the bid-ask bounce of the closes), a timer not yet re-armed.
    The mask of tick t reads the old conditions only (an exact match, checked for every
    tick above and again here), so a row never acts on a crossing of a threshold it set in
    the same tick, neither at t nor at t + 1."""
    sim, rec, _, log, _ = reactive_run
    closes, opening = np.array(rec.last), np.asarray(sim.params.initial_price)
    sector_of = list(sim.static.sector_of)
    same_tick_crossings = stale_timers = 0
    for kind in T2:
        for t in range(1, TICKS - 1):
            before, after = log.before(kind, t), log.after[kind][t]
            old = reference(before, t, closes, opening, log.events, sector_of)
            new = reference(after, t, closes, opening, log.events, sector_of)
            got = log.fired(kind, t)
            np.testing.assert_array_equal(got, old)
            # A threshold set at t that tick t's closes already cross.
            crossed = ((after["above"] != before["above"]) & (new & ABOVE != 0)) | (
                (after["below"] != before["below"]) & (new & BELOW != 0))
            if crossed.any():
                same_tick_crossings += int(crossed.sum())
                nxt = reference(after, t + 1, closes, opening, log.events, sector_of)
                np.testing.assert_array_equal(log.fired(kind, t + 1)[crossed], nxt[crossed])
            # A timer that fired at t and was re-armed or stopped at t.
            stale_timers += int(((got & INTERVAL != 0) & (new & INTERVAL == 0)).sum())
    assert same_tick_crossings > 0, "the run never set a threshold its own tick crossed"
    assert stale_timers > 0, "the run never re-armed a timer"


def test_each_kind_trades_within_limits_and_on_the_grid(reactive_run):
    sim, rec, check, log, world = reactive_run
    assert check.ticks == TICKS  # conservation held every tick
    for kind in T2:
        k = sim.static.kind(kind)
        assert rec.trades[k.start:k.stop].sum() > 0, f"{kind} never traded"
        assert k.tier == 2
    for reason in (Reason.OFF_TICK, Reason.INSUFFICIENT_CASH, Reason.INSUFFICIENT_SHARES, Reason.SHORT_LIMIT):
        assert rec.rejects[reason] == 0, reason.name
    tick = np.asarray(sim.params.tick_size)
    for kind in T2:
        for a in log.after[kind]:
            for f in ("above", "below"):
                assert (a[f] % tick[a["symbol"]] == 0).all(), f"{kind}.{f} off the tick grid"
    # The kinds' state keeps its types (dtype, shape, weak type) from tick to tick, so the
    # tick compiles once.
    def types(tree):
        return jax.tree.map(lambda x: str(jax.typeof(x)), tree)

    for kind in T2:
        assert types(sim.state.kinds[kind]) == types(world.state.kinds[kind]), kind
    # Long only: tier 2 agents never hold a short.
    pos = np.stack(log.positions)
    for kind in T2:
        k = sim.static.kind(kind)
        assert pos[:, k.start:k.stop].min() >= 0, kind


@pytest.mark.slow
def test_kind_state_fields_returned_unchanged_are_not_copied_through_the_frame():
    from systems.decide import commit_decisions, decide_orders
    from systems.observe import observe_market
    from tests.support import tiered_read_phase

    _, w, text = tiered_read_phase()
    key = jax.random.key(0)

    @functools.partial(jax.jit, static_argnums=0)
    def decided(static, params, state):
        _, frame = observe_market(static, params, state, Frame(), key)
        return decide_orders(static, params, state, frame, key)[1].kind_state

    @functools.partial(jax.jit, static_argnums=0)
    def committed(static, params, state, kind_state):
        return commit_decisions(static, params, state, Frame(kind_state=kind_state), key)[0].kinds

    kind_state = decided(w.static, w.params, w.state)
    kinds = committed(w.static, w.params, w.state, kind_state)
    kept = changed = 0
    for name, new in kind_state.items():
        olds = jax.tree.leaves(w.state.kinds[name])
        news = jax.tree.leaves(new, is_leaf=lambda x: x is None)
        for old, fresh, got in zip(olds, news, jax.tree.leaves(kinds[name])):
            kept += fresh is None
            changed += fresh is not None
            # The write half puts the state back together: unchanged fields are the old values.
            assert np.array_equal(got, old if fresh is None else fresh)
    assert kept > 0 and changed > 0
    # And the compiled read phase copies no kind state field into its outputs.
    assert "state_kinds" in text and "copy(%state_kinds" not in text
