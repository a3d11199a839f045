"""Stop-loss holders (tier 2): hold shares, sell them when the price falls through a stop,
buy back on a rebound or after a cool-down, and set a new stop.

The stop is ``stop`` below the entry price (snapped down to the tick grid). When the
close crosses down through it (``_wake.BELOW``) the agent sells its whole position (in
orders of at most ``size`` shares), removes the stop and arms a re-entry threshold
``reentry`` above the exit price (the reference price at the stop, snapped up) and a
``cooldown`` timer. When the close crosses up through the re-entry threshold
(``_wake.ABOVE``) or the timer fires (``_wake.INTERVAL``), whichever comes first, it buys
back up to ``max_position`` shares, takes the reference price as its new entry and arms a
new stop. The mirror image of ``take_profit``: both are ``_round_trip`` with the exit
below the entry here.
"""

from __future__ import annotations

import dataclasses
import functools

from components.schema import setting
from components.wake import BELOW
from systems.strategies import _round_trip
from systems.strategies._round_trip import (  # noqa: F401
    ROWS_PER_AGENT,
    Params,
    State,
    init_state,
    initial_holdings,
)
from systems.strategies._signal import TradeConfig

KIND = "stop_loss"
TIER = 2


@dataclasses.dataclass
class Config(TradeConfig):
    size: list[int] = setting([200, 500], lo=1, doc=(
        "Range of per-order sizes in shares: the most sold at the stop or bought back at once."))
    shares: int = setting(200, doc=(
        "Starting shares per agent in its symbol (the position the stop protects)."))
    stop: list[float] = setting([0.01, 0.03], lo=0.0001, hi=0.9, doc=(
        "Range of the stop's distance below the entry price (fraction)."))
    reentry: list[float] = setting([0.005, 0.02], hi=1.0, doc=(
        "Range of the re-entry threshold's distance above the exit price (fraction)."))
    cooldown: list[int] = setting([20, 50], lo=1, doc=(
        "Range of the ticks after a stop at which an agent buys back anyway."))


def make_params(cfg: Config, count: int, rng, n_symbols: int) -> Params:
    """Draw each agent's limits, stop, re-entry and cool-down; symbols round-robin."""
    return _round_trip.make_params(cfg, count, rng, n_symbols, cfg.stop, cfg.reentry, cfg.cooldown)


decide = functools.partial(_round_trip.decide, BELOW)
