"""The tick grid: float prices (units) snapped to whole ticks, never below one tick."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def floor_tick(price: jax.Array, tick: jax.Array) -> jax.Array:
    """Largest multiple of ``tick`` <= price (float units), at least one tick. i64."""
    p = jnp.floor(price / tick).astype(jnp.int64) * tick
    return jnp.maximum(p, tick)


def ceil_tick(price: jax.Array, tick: jax.Array) -> jax.Array:
    """Smallest multiple of ``tick`` >= price (float units), at least one tick. i64."""
    p = jnp.ceil(price / tick).astype(jnp.int64) * tick
    return jnp.maximum(p, tick)


def round_tick(price: jax.Array, tick: jax.Array) -> jax.Array:
    """Nearest multiple of ``tick`` to price (float units), at least one tick. i64."""
    p = jnp.round(price / tick).astype(jnp.int64) * tick
    return jnp.maximum(p, tick)
