"""systems.rng: the hashed counter words against a pure-Python reference, and their balance."""

import jax
import numpy as np

from systems.rng import hashed_bits


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
