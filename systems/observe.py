"""observe: the book summary left by the last match -> the MarketView agents decide on."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from components.frame import Frame
from components.market import MarketView
from components.world import WorldParams, WorldState, WorldStatic
from systems.indicators import read_indicators
from systems.measure import marks


def observe_market(
    static: WorldStatic, params: WorldParams, state: WorldState, frame: Frame, key: jax.Array
) -> tuple[WorldState, Frame]:
    """Fills ``frame.view``: MarketView [S], and ``frame.indicators``: the indicator
    values of every series in ``static.indicators``. Reads only."""
    del params, key
    m = state.market
    both = (m.bid > 0) & (m.ask > 0)
    mid = marks(state)  # mid when both sides quote, else the last trade
    view = MarketView(
        bid=m.bid,
        ask=m.ask,
        last=m.last,
        mid=mid,
        ref=mid,
        spread=jnp.where(both, m.ask - m.bid, 0),
        fair=state.fundamentals.fair,
        news=state.fundamentals.news_move,
    )
    return state, frame.replace(view=view, indicators=read_indicators(static.indicators, state.indicators))
