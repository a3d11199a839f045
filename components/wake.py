"""Wake conditions of the tier 2 (reactive) kinds: one row per agent, and the bits and
scopes they are written in. The mask and its updates are :mod:`systems.strategies._wake`."""

from __future__ import annotations

import jax
from flax import struct

ABOVE, BELOW, INTERVAL, EVENT = 1, 2, 4, 8
"""Reason bits of a wake."""

OWN, ANY = -1, -2
"""Event scopes besides a sector index: the row's own symbol; any symbol."""

NEVER_FIRED = -1
"""``fired_at`` of a row that has not woken yet."""


@struct.dataclass
class Wake:
    """Wake conditions, one row per agent of a tier 2 kind. Prices in units."""

    symbol: jax.Array  # i32[n] the watched symbol (price crossings; OWN-scope news)
    above: jax.Array  # i64[n] wake when the close crosses up through this (0: none)
    below: jax.Array  # i64[n] wake when the close crosses down through this (0: none)
    every: jax.Array  # i64[n] timer interval in ticks (0: none)
    next_tick: jax.Array  # i64[n] the timer fires at every tick >= this (until re-armed)
    events: jax.Array  # i32[n] bit mask of subscribed event kinds, 1 << k (0: none)
    scope: jax.Array  # i32[n] where news must land: OWN, ANY, or a sector index >= 0
    seen: jax.Array  # i64[n] close the row saw at its last decision: the next prev (0: none)
    fired_at: jax.Array  # i64[n] tick of the row's last wake (NEVER_FIRED: none)
    reason: jax.Array  # i32[n] reason bits of that wake
