"""decide: every strategy kind's system over its rows -> one fixed-length OrderBatch.

The read phase decides; what a decision changes in the world waits for the write phase
(``commit_decisions``): a kind's own state (tier 2 wake conditions set or removed by its
agents) and the queue of orders still travelling to the engine (order latency). So a
condition changed at tick t is in force from tick t + 1, and an order decided at tick t
by a kind with latency k reaches the engine, and validation, at tick t + k.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from components.frame import Frame
from components.world import WorldParams, WorldState, WorldStatic
from systems.strategies import registry


def decide_orders(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[WorldState, Frame]:
    """Fills ``frame.orders``: OrderBatch [static.batch_rows]. Reads only.

    Kinds are laid out in ``static.kinds`` order, then the background pool's rows. Tick 0
    is the opening: only kinds whose module sets ``OPENS_BOOK = True`` (market makers)
    send orders, so the book is seeded with two-sided quotes around the initial price
    before anyone trades.

    A kind whose module defines ``init_state`` gets its state as ``state.kinds[name]`` and
    its ``decide`` returns ``(orders, new_state)``; the new state goes to
    ``frame.kind_state[name]`` for the write phase, with ``None`` for the fields it
    returned unchanged. A kind with latency k sends the
    orders it decided k ticks ago; this tick's go to ``frame.delay_push[name]``.
    """
    strategies = registry()
    keys = jax.random.split(key, len(static.kinds) + 1)
    blocks, kind_state, push = [], {}, {}
    for kind, k in zip(static.kinds, keys):
        mod = strategies[kind.name]
        out = mod.decide(static, kind, params, params.kinds[kind.name], state, frame, k)
        if isinstance(out, tuple):
            out, new_state = out
            # Fields the kind returns unchanged stay out of the frame (None): an output
            # that is an input is copied, here and again into the state by the write phase.
            kind_state[kind.name] = jax.tree.map(
                lambda old, new: None if new is old else new, state.kinds[kind.name], new_state
            )
        block = out
        if not getattr(mod, "OPENS_BOOK", False):
            block = block.replace(valid=block.valid & (state.tick > 0))
        if kind.latency > 0:
            push[kind.name] = block
            ring = state.delayed[kind.name]
            block = jax.tree.map(lambda x: x[state.tick % kind.latency], ring)
        blocks.append(block)
    if static.background is not None:
        from systems.background import background_orders

        block = background_orders(static, params, state, frame, keys[-1])
        blocks.append(block.replace(valid=block.valid & (state.tick > 0)))
    orders = jax.tree.map(lambda *xs: jnp.concatenate(xs), *blocks)
    return state, frame.replace(orders=orders, kind_state=kind_state, delay_push=push)


def commit_decisions(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[WorldState, Frame]:
    """The write half of ``decide``: store each kind's new state and queue the orders of
    kinds with latency. Writes state."""
    del params, key
    kinds = dict(state.kinds)
    for name, new_state in (frame.kind_state or {}).items():  # None: the field is unchanged
        kinds[name] = jax.tree.map(lambda old, new: old if new is None else new, kinds[name], new_state)
    delayed = dict(state.delayed)
    for name, block in (frame.delay_push or {}).items():
        lat = static.kind(name).latency
        delayed[name] = jax.tree.map(lambda r, b: r.at[state.tick % lat].set(b), delayed[name], block)
    return state.replace(kinds=kinds, delayed=delayed), frame
