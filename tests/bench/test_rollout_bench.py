"""``python -m qtg.bench --only rollout``: its markets are the ones its docstring names (the
rollout itself is tested in ``tests/core/test_rollout.py``; the benchmark's timing loop
compiles for a quarter of a minute, too long for a check of its arithmetic)."""

from __future__ import annotations

import jax

from qtg.bench import rollout


def test_the_small_market_is_one_symbol_and_32_agents_with_32_slots_a_side():
    world, state = rollout.market_world("small")
    assert (world.static.n_agents, world.static.n_symbols, state.books.capacity) == (32, 1, 32)
    assert [k.name for k in world.static.kinds] == ["market_maker", "noise"] and world.static.background is None
    assert all(int((a != 0).sum()) == 0 for a in jax.tree.leaves(state.books))


def test_the_default_market_is_the_default_configuration():
    world, state = rollout.market_world("default")
    assert (world.static.n_agents, world.static.n_symbols) == (150, 10)
    assert [k.name for k in world.static.kinds] == ["market_maker", "noise"]
    assert state.books.qty.shape == (10, 2, 256)
