"""systems.fusion: materialised arrays are bit-exact copies that XLA computes once."""

import re

import jax
import jax.numpy as jnp
import numpy as np

from systems.fusion import materialised


def test_materialised_is_its_input_bit_for_bit():
    x = jnp.asarray([[-0.0, 1.5, np.nan], [np.inf, -np.inf, 5e-324]], jnp.float64)
    y = materialised(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert np.asarray(y).tobytes() == np.asarray(x).tobytes()
    i = jnp.arange(-3, 9, dtype=jnp.int64)
    assert np.array_equal(materialised(i), i)


def _row_fusions_with_pow(fn, base, sym):
    """The loop fusions over the rows (shape [R]) whose body computes a ``power``."""
    text = jax.jit(fn).lower(base, sym).compile().as_text()
    bodies = dict(re.findall(r"^%([\w.\-]+) \([^\n]*\{\n(.*?)\n\}", text, re.M | re.S))
    rows = f"[{sym.shape[0]}]"
    return [
        name
        for name, shape, called in re.findall(r"%([\w.\-]+) = (\S+) fusion\(.*calls=%([\w.\-]+)", text)
        if rows in shape and " power(" in bodies.get(called, "")
    ]


def test_a_gathered_per_symbol_pow_runs_once_per_symbol_not_per_row():
    base = jnp.linspace(0.5, 2.0, 10)
    sym = jnp.arange(8800, dtype=jnp.int32) % 10
    fused = lambda b, s: (b**1.7)[s] * 3.0  # noqa: E731
    once = lambda b, s: materialised(b**1.7)[s] * 3.0  # noqa: E731
    assert _row_fusions_with_pow(fused, base, sym)  # XLA's default: a pow per row
    assert not _row_fusions_with_pow(once, base, sym)
    assert np.array_equal(jax.jit(fused)(base, sym), jax.jit(once)(base, sym))


def test_validation_reads_each_agents_sums_instead_of_recomputing_them_per_row():
    # The factor kind's agents have one row per symbol: fused into the loop over the rows,
    # each row would recompute its agent's sums over all its rows (a reduce in the loop).
    from tests.support import tiered_read_phase

    _, w, text = tiered_read_phase()  # admission's fast variant, as the tick runs it
    assert max(k.rows_per_agent for k in w.static.kinds) == w.static.n_symbols
    bodies = dict(re.findall(r"^%([\w.\-]+) \([^\n]*\{\n(.*?)\n\}", text, re.M | re.S))
    rows = f"s8[{w.static.batch_rows}]"
    reasons = [called for shape, called in re.findall(r"= (\S+) fusion\(.*calls=%([\w.\-]+)", text)
               if shape.startswith(rows)]
    assert reasons  # the refusal reason of every batch row, one loop
    assert not any(" reduce(" in bodies[c] for c in reasons)
