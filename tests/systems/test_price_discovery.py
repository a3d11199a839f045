"""Price discovery: the mispricing half-life (AR(1) of log(price / fair value seen)) falls
as ``market.anchoring`` rises, on the default market's mechanisms (one symbol)."""

import numpy as np
import pytest

from qtg.reports.analysis import ar1_fit
from tests.support import make_config, run_sim

TICKS = 2000


def half_life(anchoring: float, seed: int = 0) -> float:
    cfg = make_config(**{"market.symbols": ["ACME"], "market.anchoring": anchoring, "run.ticks": TICKS,
                         "population.market_maker.count": 5, "population.noise.count": 10, "seed": seed})
    h = run_sim(cfg).rec.arrays()
    both = (h["bid"] > 0) & (h["ask"] > 0)
    price = np.where(both, (h["bid"] + h["ask"]) / 2.0, h["last"])[:, 0]
    seen = h["fair"][:-1, 0]  # the fair value the next tick's prices are set on
    return ar1_fit(np.log(price[1:] / seen))["half_life"]


@pytest.mark.slow
def test_the_half_life_falls_as_anchoring_rises():
    # Well separated anchorings (one 2,000-tick series is noisy): over 3 seeds x 3,000 ticks
    # the medians run 157, 13, 2.2 ticks at 0.002, 0.05, 0.3 (docs/realism.md).
    lives = [half_life(a) for a in (0.002, 0.05, 0.3)]
    assert lives[0] > lives[1] > lives[2], lives
    assert lives[0] > 30 and lives[2] < 10, lives
