"""The whole tick on the device (qtg.core.rollout): scan = repeated steps, vmapped market i
= market i alone, no retracing for new values of the same shapes; and the helpers that
compare a rollout with the host loop (``test_device_experiments.py`` uses them)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from components.orders import STP, Status
from qtg.core import rollout as ro
from qtg.core.world import build_world
from tests.support import make_config

pytestmark = pytest.mark.slow  # the module fixture compiles the device tick; each test compiles another

RUN = jax.jit(ro.rollout, static_argnums=(0, 3, 4))
STEP = jax.jit(ro.step, static_argnums=(0, 3))

SMALL = {"population": {"market_maker": {"count": 2}, "noise": {"count": 12},
                        "momentum": {"count": 4, "latency": 1}},
         "market.symbols": ["ACME", "BOLT"]}
"""Two symbols, makers, noise traders and latency-delayed momentum traders: a tick that
compiles in a few seconds, for the scan, vmap and retrace checks."""


def leaves(state):
    """Every leaf of a state as NumPy, keys as their data, the books left out."""
    out = []
    for path, a in jax.tree_util.tree_leaves_with_path(state.replace(books=None)):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a = jax.random.key_data(a)
        out.append((jax.tree_util.keystr(path), np.asarray(a)))
    return out


def same_state(a, b) -> list[str]:
    """Paths of the leaves where two states differ (empty: bit-identical)."""
    return [p for (p, x), (_, y) in zip(leaves(a), leaves(b)) if x.shape != y.shape or not np.array_equal(x, y)]


def resting(books) -> set[tuple]:
    b = jax.tree.map(np.asarray, books)
    s, side, slot = np.nonzero(b.qty > 0)
    return {(int(b.id[i, j, k]), int(b.agent[i, j, k]), int(i), int(j), int(b.price[i, j, k]), int(b.qty[i, j, k]))
            for i, j, k in zip(s, side, slot)}


def resting_of(engine) -> set[tuple]:
    """A host engine's resting orders in the tuples of :func:`resting`."""
    r = engine.resting_orders()
    return set(zip(*(r[k].tolist() for k in ("id", "agent", "symbol", "side", "price", "qty"))))


def check_same_run(sim, results, state, out):
    """The host loop (its simulation and results) and a rollout (final state, outputs)
    traded alike: final state bit for bit, the books order for order, and every tick's
    bars, outcome counts, refusals, arrivals, fills and marks."""
    assert int(out.book_full.sum()) == 0
    assert same_state(sim.state, state) == []
    assert resting(state.books) == resting_of(sim.engine)
    for name in ("bid", "ask", "last", "high", "low", "volume"):
        assert np.array_equal(np.asarray(getattr(out, name)), np.stack([getattr(r, name) for r in results])), name
    assert np.array_equal(np.asarray(out.status), np.stack([r.status for r in results]))
    assert np.array_equal(np.asarray(out.rejects), np.stack([r.rejects for r in results]))
    assert np.asarray(out.arrivals).tolist() == [r.accepted for r in results]
    assert np.asarray(out.fills).tolist() == [len(r.fills) for r in results]
    assert np.array_equal(np.asarray(out.marks), np.stack([r.marks for r in results]))
    assert int(np.asarray(out.fills).sum()) > 2 * len(results)  # a market that trades


TICKS = 6


@pytest.fixture(scope="module")
def small():
    """The small market: its world, state with books, and its rollout of TICKS ticks
    (one compilation shared by the tests below)."""
    cfg = make_config(**SMALL)
    world = build_world(cfg)
    state = ro.with_books(world.state, world.static, 32)
    final, out = RUN(world.static, world.params, state, TICKS, STP.NONE)
    return world, state, (final, out)


def test_a_scan_of_ticks_is_the_same_as_calling_step_each_tick(small):
    world, state, (scanned, out) = small
    stepped, outs = state, []
    for _ in range(TICKS):
        stepped, o = STEP(world.static, world.params, stepped, STP.NONE)
        outs.append(o)
    assert same_state(scanned, stepped) == [] and resting(scanned.books) == resting(stepped.books)
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(jax.tree.map(lambda *x: jnp.stack(x), *outs))):
        assert np.array_equal(a, b)
    assert np.asarray(out.tick).tolist() == list(range(TICKS)) and int(scanned.tick) == TICKS


def test_market_i_of_a_vmapped_rollout_is_market_i_alone_and_nothing_retraces(small):
    """Three markets of different seeds and a swept parameter (the borrow rate) in one
    call; each trades exactly as its own rollout: every integer of the state (cash,
    shares, orders, bars, the books) bit for bit. Floating-point statistics agree to
    1e-12: XLA compiles the batched program differently (which products it fuses into
    one multiply-add, how it associates a scalar times an outer product), so they can
    differ in the last bit. A second call with new values of the same shapes traces
    nothing again."""
    world, state, _ = small
    traces = []

    def counted(static, params, states, ticks, stp):
        traces.append(ticks)
        return ro.rollout_markets(static, params, states, ticks, stp)

    markets = jax.jit(counted, static_argnums=(0, 3, 4))
    params, states = ro.replicate(world.params, state, seeds=[3, 4, 5])
    params = params.replace(borrow_rate=params.borrow_rate * jnp.asarray([1, 2, 3]))
    finals, out = markets(world.static, params, states, TICKS, STP.NONE)
    alone = [RUN(world.static, jax.tree.map(lambda x, i=i: x[i], params), jax.tree.map(lambda x, i=i: x[i], states),
                 TICKS, STP.NONE) for i in range(3)]
    for i, (final, o) in enumerate(alone):
        mine = jax.tree.map(lambda x, i=i: x[i], finals)
        for (path, a), (_, b) in zip(leaves(mine), leaves(final)):
            if np.issubdtype(a.dtype, np.floating):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300, err_msg=path)
            else:
                assert np.array_equal(a, b), path
        assert resting(mine.books) == resting(final.books)
        for name in ("last", "volume", "status", "fills"):
            assert np.array_equal(np.asarray(getattr(out, name)[i]), np.asarray(getattr(o, name))), name
    assert not np.array_equal(np.asarray(out.volume[0]), np.asarray(out.volume[1]))  # the seeds differ
    params2, states2 = ro.replicate(world.params, state, seeds=[7, 8, 9])
    markets(world.static, params2, states2, TICKS, STP.NONE)
    assert traces == [TICKS]


def test_the_match_stage_reports_what_reached_the_book(small):
    _, _, (_, out) = small
    status = np.asarray(out.status)
    assert status[:, Status.NONE].sum() == 0
    assert (status.sum(axis=1) == np.asarray(out.arrivals)).all()
    assert (np.asarray(out.fills) > 0).any()
