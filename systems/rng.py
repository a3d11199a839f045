"""Bulk random words for the tick's per-row draws, cheaper on a CPU than threefry.

Kinds with one draw per row per tick (noise traders, the background pool) need tens of
thousands of 32-bit words a tick. ``jax.random.bits`` runs threefry-2x32 over all of
them: 20 rounds per pair of words, lowered on the CPU as a loop that XLA cannot fuse
with the words' consumers. :func:`hashed_bits` takes two words from the stage's key
(one small threefry call) and derives word ``i`` of the call by hashing the counter
twice with murmur3's 32-bit finaliser, keyed by the two seed words::

    word[i] = fmix32(fmix32(i ^ s0) ^ s1)

``fmix32`` is a bijection of 32-bit words with full avalanche, so the words of one call
are distinct functions of their counters, and two calls (two ticks, two kinds) share a
stream only if they share both seed words. Same key, same words, on every backend.

:func:`unroll_threefry_on_cpu` makes the remaining threefry calls (the tick's key splits,
the pool's Poisson counts, the news draws) cheaper on a CPU without changing their bits.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from systems.fusion import materialised


def unroll_threefry_on_cpu() -> bool:
    """Lower threefry-2x32 on the CPU as straight-line code, as on the other backends.

    JAX lowers it on the CPU as a loop over its 5 groups of 4 rounds (smaller programs,
    faster compiles). The tick's two programs hold 20 such loops, each for a handful of
    words, and a loop runs its body as about ten separately dispatched ops per iteration:
    about 160 of the 1,100 ops of a tick at seed_100k. Unrolled, XLA fuses the rounds
    into a few ops (the tick: 0.11 ms less at seed_100k). The words are the same, bit for
    bit (tests/systems/test_rng.py checks them against a NumPy threefry). Applies to programs
    lowered after the call; process-wide.

    Uses JAX's own lowering rule from ``jax._src``: returns ``False`` and changes nothing
    where this JAX version does not have it.
    """
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry
        rule = threefry._threefry2x32_lowering_rule
        primitive = threefry.threefry2x32_p
    except (ImportError, AttributeError):
        return False
    mlir.register_lowering(primitive, rule, platform="cpu")
    return True


def fmix32(x: jax.Array) -> jax.Array:
    """murmur3's finaliser: a bijective avalanche mix of uint32 words."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def hashed_bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Random uint32 words of ``shape``, a deterministic function of ``key``."""
    # Materialised: unrolled threefry would otherwise be fused into, and run for, every word.
    seed = materialised(jax.random.bits(key, (2,), jnp.uint32))
    counter = jnp.arange(math.prod(shape), dtype=jnp.uint32).reshape(shape)
    return fmix32(fmix32(counter ^ seed[0]) ^ seed[1])
