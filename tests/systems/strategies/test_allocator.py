"""systems.strategies.allocator: weights are clipped and scaled to the gross, and targets
are the weights of the equity in shares within the long and short limits. (Its orders in
a market: tests/rl/test_portfolio.py.)"""

import jax.numpy as jnp
import numpy as np

from components.money import to_fixed
from systems.strategies import allocator
from systems.strategies._signal import Trade


def _params(gross=1.0, max_position=(100, 100), size=(50, 50)):
    n = len(max_position)
    trade = Trade(symbol=jnp.zeros(n, jnp.int32), size=jnp.asarray(size, jnp.int64),
                  max_position=jnp.asarray(max_position, jnp.int64), collar=jnp.full(n, 0.02))
    return allocator.Params(trade=trade, gross=jnp.full(n, gross), band=jnp.zeros(n))


def test_weights_are_clipped_and_scaled_to_the_gross_and_targets_respect_the_limits():
    p = _params(gross=1.0)
    w = np.asarray(allocator.weights(p, jnp.asarray([[0.8, 0.8, -0.4], [0.2, -0.3, 0.1]], jnp.float32)))
    assert np.allclose(w[0], np.array([0.8, 0.8, -0.4]) / 2.0) and np.allclose(w[1], [0.2, -0.3, 0.1])
    assert np.allclose(np.asarray(allocator.weights(p, jnp.asarray([[3.0, -3.0, 0.0]] * 2)))[0], [0.5, -0.5, 0.0])
    # equity 10,000 + 20 x 100 = 12,000: weights 0.5 / -0.25 / 0.25 of it at 100, 50, 40
    cash, pos = jnp.asarray([to_fixed(10_000.0)] * 2), jnp.asarray([[20, 0, 0], [0, 0, 0]], jnp.int64)
    ref = jnp.asarray([to_fixed(100.0), to_fixed(50.0), to_fixed(40.0)])
    big = _params(max_position=(1000, 1000))
    action = jnp.asarray([[0.5, -0.25, 0.25], [0.5, -0.25, 0.25]], jnp.float32)
    target, equity = allocator.targets(big, action, cash, pos, ref, jnp.asarray([1000, 0]))
    assert float(equity[0]) == to_fixed(12_000.0) and float(equity[1]) == to_fixed(10_000.0)
    assert np.asarray(target).tolist() == [[60, -60, 75], [50, 0, 62]]  # no shorts for the second: flat
    capped, _ = allocator.targets(_params(), action, cash, pos, ref, jnp.asarray([30, 30]))
    assert np.asarray(capped).tolist() == [[60, -30, 75], [50, -30, 62]]  # 100 long, 30 short at most
