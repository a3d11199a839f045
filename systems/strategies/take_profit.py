"""Take-profit holders (tier 2): hold shares, sell them when the price rises through a
profit target, and buy back on a dip below the exit price.

The target is ``target`` above the entry price (snapped up to the tick grid). When the
close crosses up through it (``_wake.ABOVE``) the agent sells its whole position (in
orders of at most ``size`` shares), removes the target and arms a buy threshold ``dip``
below the exit price (the reference price at the sale, snapped down). When the close
crosses down through the buy threshold (``_wake.BELOW``) it buys back up to
``max_position`` shares, takes the reference price as its new entry and arms a new
target. No cool-down. The mirror image of ``stop_loss``: both are ``_round_trip`` with
the exit above the entry here.
"""

from __future__ import annotations

import dataclasses
import functools

from components.schema import setting
from components.wake import ABOVE
from systems.strategies import _round_trip
from systems.strategies._round_trip import (  # noqa: F401
    ROWS_PER_AGENT,
    Params,
    State,
    init_state,
    initial_holdings,
)
from systems.strategies._signal import TradeConfig

KIND = "take_profit"
TIER = 2


@dataclasses.dataclass
class Config(TradeConfig):
    size: list[int] = setting([200, 500], lo=1, doc=(
        "Range of per-order sizes in shares: the most sold at the target or bought back at once."))
    shares: int = setting(200, doc="Starting shares per agent in its symbol.")
    target: list[float] = setting([0.01, 0.03], lo=0.0001, hi=10.0, doc=(
        "Range of the profit target's distance above the entry price (fraction)."))
    dip: list[float] = setting([0.005, 0.02], hi=0.9, doc=(
        "Range of the buy-back threshold's distance below the exit price (fraction)."))


def make_params(cfg: Config, count: int, rng, n_symbols: int) -> Params:
    """Draw each agent's limits, target and dip; symbols round-robin."""
    return _round_trip.make_params(cfg, count, rng, n_symbols, cfg.target, cfg.dip)


decide = functools.partial(_round_trip.decide, ABOVE)
