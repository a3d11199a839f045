"""systems.rng: the hashed counter words against a pure-Python reference, and their balance;
threefry unrolled on the CPU against a NumPy threefry."""

import jax
import jax.extend.random as jex_random
import jax.numpy as jnp
import numpy as np

from systems.rng import hashed_bits, unroll_threefry_on_cpu


def fmix32_reference(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & 0xFFFFFFFF
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_words_equal_the_reference_hash_of_their_counters():
    key = jax.random.key(3)
    s0, s1 = (int(v) for v in np.asarray(jax.random.bits(key, (2,), np.uint32)))
    words = np.asarray(hashed_bits(key, (3, 7)))
    expected = [fmix32_reference(fmix32_reference(i ^ s0) ^ s1) for i in range(21)]
    assert words.dtype == np.uint32 and words.shape == (3, 7)
    assert words.reshape(-1).tolist() == expected


def test_words_are_distinct_balanced_and_differ_between_keys():
    a = np.asarray(hashed_bits(jax.random.key(1), (1 << 18,)))
    b = np.asarray(hashed_bits(jax.random.key(2), (1 << 18,)))
    assert np.unique(a).size == a.size  # a bijection of distinct counters
    per_bit = ((a[:, None] >> np.arange(32, dtype=np.uint32)) & 1).mean(axis=0)
    assert np.abs(per_bit - 0.5).max() < 0.005  # 5 sd at 2**18 words
    counts = np.bincount(a.view(np.uint8), minlength=256)
    expected = counts.sum() / 256
    assert ((counts - expected) ** 2 / expected).sum() < 360  # chi-square, 255 dof, p ~ 1e-4
    assert (a == b).mean() < 1e-3
    assert abs(np.corrcoef(a.astype(float), b.astype(float))[0, 1]) < 0.01


def threefry2x32_reference(k0, k1, x0, x1):
    """Threefry-2x32 with 20 rounds (Salmon et al., Random123), on uint32 arrays."""
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    ks = (k0, k1, k0 ^ k1 ^ np.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for group in range(5):
        for r in rotations[group % 2]:
            x0 = x0 + x1
            x1 = ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))) ^ x0
        x0 = x0 + ks[(group + 1) % 3]
        x1 = x1 + ks[(group + 2) % 3] + np.uint32(group + 1)
    return x0, x1


def test_unrolled_threefry_gives_the_reference_words_without_a_loop():
    assert unroll_threefry_on_cpu()  # this JAX has the rule
    f = jax.jit(jex_random.threefry_2x32)
    # Random123's known answer.
    key = jnp.asarray([0x13198A2E, 0x03707344], jnp.uint32)
    count = jnp.asarray([0x243F6A88, 0x85A308D3], jnp.uint32)
    assert np.asarray(f(key, count)).tolist() == [0xC4923A9C, 0x483DF7A0]
    rng = np.random.default_rng(0)
    for _ in range(4):
        k = rng.integers(0, 2**32, 2, dtype=np.uint32)
        x = rng.integers(0, 2**32, 64, dtype=np.uint32)
        with np.errstate(over="ignore"):
            y0, y1 = threefry2x32_reference(k[0], k[1], x[:32], x[32:])
        assert np.asarray(f(jnp.asarray(k), jnp.asarray(x))).tolist() == np.concatenate([y0, y1]).tolist()
    if jax.default_backend() == "cpu":
        # A split compiles to straight-line code: no loop over the rounds.
        text = jax.jit(lambda k: jax.random.split(k, 3)).lower(jax.random.key(1)).compile().as_text()
        assert " while(" not in text
