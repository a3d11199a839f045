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
    position: jax.Array  # i64[N, S] shares, negative when short
    borrowed: jax.Array  # i64[N, S] shares borrowed from the symbol's pool (>= the short)
    fees: jax.Array  # i64[N] borrow fees paid so far, units


@struct.dataclass
class Lender:
    """The lender of every borrow pool (a resource): the holders of the shares outstanding
    that no agent holds, part of which (the pool) may be lent to short sellers."""

    lent: jax.Array  # i64[S] shares lent now (== the agents' borrowed, summed)
    claimed: jax.Array  # i64[S] claims on the pool: shorts held plus resting short sales
    cash: jax.Array  # i64[] borrow fees received, units
    unpaid: jax.Array  # i64[] fees agents could not pay (cash exhausted), units


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
