"""Agent components: one row per agent, the agent axis first.

An agent is a row index. Every agent has a wallet and ``SLOTS`` order slots (slot 0 holds
its resting buy order, slot 1 its resting sell order), so the tick can cancel or modify a
resting order without any per-agent Python object.
"""

from __future__ import annotations

import jax
from flax import struct

from components.orders import Side

SLOTS: int = 2
"""Order slots per agent: one resting order per side (slot index == Side)."""

NO_ORDER: int = -1
"""Slot id of an empty slot."""


@struct.dataclass
class Wallet:
    cash: jax.Array  # i64[N] units
    position: jax.Array  # i64[N, S] shares


@struct.dataclass
class OrderSlots:
    """Each agent's resting orders, one per side, as the engine last reported them."""

    id: jax.Array  # i64[N, SLOTS] order id, NO_ORDER when empty
    symbol: jax.Array  # i32[N, SLOTS]
    price: jax.Array  # i64[N, SLOTS] units
    remaining: jax.Array  # i64[N, SLOTS] shares still resting


def order_id(tick: jax.Array, agent: jax.Array, side: jax.Array, n_agents: int) -> jax.Array:
    """Id of a new order: unique per (tick, agent, side), and its slot is ``id % (N*SLOTS)``.

    Newer orders have larger ids. int64.
    """
    return tick.astype("int64") * (n_agents * SLOTS) + agent.astype("int64") * SLOTS + side


def order_side(order: jax.Array) -> jax.Array:
    """The side (== slot) an order id was issued for: ``id % SLOTS``, as a bit mask (an
    int64 modulo costs several times more on a CPU). Ids are non-negative."""
    return order & (SLOTS - 1)


assert SLOTS & (SLOTS - 1) == 0  # order_side masks
assert int(Side.BUY) == 0 and int(Side.SELL) == 1  # slot index == side
