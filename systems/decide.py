"""decide: every strategy kind's system over its rows -> one fixed-length OrderBatch."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from components.world import WorldParams, WorldState, WorldStatic
from systems.strategies import registry


def decide_orders(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: dict, key: jax.Array
) -> tuple[WorldState, dict]:
    """Adds ``frame["orders"]``: OrderBatch [static.batch_rows]. Reads only.

    Kinds are laid out in ``static.kinds`` order. Tick 0 is the opening: only kinds whose
    module sets ``OPENS_BOOK = True`` (market makers) send orders, so the book is seeded
    with two-sided quotes around the initial price before anyone trades.
    """
    strategies = registry()
    keys = jax.random.split(key, len(static.kinds))
    blocks = []
    for kind, k in zip(static.kinds, keys):
        mod = strategies[kind.name]
        block = mod.decide(static, kind, params, params.kinds[kind.name], state, frame, k)
        if not getattr(mod, "OPENS_BOOK", False):
            block = block.replace(valid=block.valid & (state.tick > 0))
        blocks.append(block)
    frame["orders"] = jax.tree.map(lambda *xs: jnp.concatenate(xs), *blocks)
    return state, frame

