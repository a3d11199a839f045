"""Helpers that steer XLA's fusion where its defaults cost time."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def materialised(x: jax.Array) -> jax.Array:
    """``x``, computed once into a buffer of its own.

    XLA fuses the computation of a small array into every loop that gathers from it, and
    a loop fusion recomputes its producers per output element: a per-symbol ``pow`` or
    ``tanh`` gathered by every row of a kind runs once per row instead of once per symbol
    (8,800 ``pow`` calls a tick for the noise traders at seed_100k). Likewise a value read
    by several loops (an order batch's ``price``, ``qty`` and ``valid``; every row of an
    agent reading the agent's sums) is computed again in each of them. An
    ``optimization_barrier`` does not stop that fusion; a scatter's result is always
    materialised, and one over ``x``'s own positions returns ``x`` unchanged.
    """
    flat = x.reshape(-1)
    return jnp.zeros_like(flat).at[jnp.arange(flat.shape[0])].set(flat).reshape(x.shape)
