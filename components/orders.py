"""Orders, fills and outcomes: the contract every matching engine implements.

All three are struct-of-arrays pytrees (``flax.struct.dataclass``) whose leaves are NumPy
arrays on the host side of the tick and JAX arrays on the device side. Field order and
dtypes are part of the contract.

Semantics (the exact engine is the readable definition; the fast engine must agree fill
for fill):

* Orders are processed one at a time in array order (the match system puts a tick's
  orders in a random arrival order, drawn from the tick's key, before calling an
  engine). Rows with ``valid == False`` are skipped and get ``Status.NONE``.
* Price-time priority: better price first, then earlier arrival at that price. A fill
  always happens at the resting (maker) order's price.
* ``id`` names an order. A new order (LIMIT, MARKET, IOC, POST_ONLY) brings its own id,
  which must not be live in the book (``Reason.DUPLICATE_ID``). CANCEL and MODIFY name the
  live order they act on by ``id``; ``agent`` must be its owner (``Reason.NOT_OWNER``) and
  ``symbol`` its symbol, else ``Reason.UNKNOWN_ORDER``.
* LIMIT (good till cancel): matches while it crosses, the remainder rests.
* MARKET: walks the book with no price limit (``price`` is ignored); the unfilled
  remainder is cancelled. Nothing filled at all gives ``Status.CANCELLED`` with
  ``Reason.NO_LIQUIDITY``.
* IOC: like LIMIT but the remainder is cancelled instead of resting (``Status.CANCELLED``
  with ``Reason.NO_LIQUIDITY`` when nothing filled).
* POST_ONLY: rejected with ``Reason.WOULD_CROSS`` if it would match on arrival, else rests.
* CANCEL: removes the named live order (``qty``, ``price`` and ``side`` are ignored).
* MODIFY: ``qty`` is the new remaining quantity and ``price`` the new price (``side`` is
  ignored: an order keeps its side). Same price and a smaller or equal quantity keeps time
  priority; a larger quantity at the same price moves the order to the back of its level;
  a new price loses priority and re-enters like a LIMIT order with the same id (it may
  match; ``filled`` counts what it filled on re-entry).
* Self-trade prevention (``STP``) is an engine setting: NONE lets an agent trade with
  itself, CANCEL_TAKER drops the incoming order's remainder (``Reason.SELF_TRADE``),
  CANCEL_MAKER removes the agent's own resting order and goes on matching.
* Checks, in this order: kind, symbol, side (new orders), ``0 < qty <= MAX_QTY`` (not
  CANCEL), ``0 < price <= MAX_PRICE`` and on the symbol's tick grid (LIMIT, IOC,
  POST_ONLY, MODIFY), then the id. The bounds (:mod:`components.money`) keep every
  ``price * qty`` within 10**18, so no engine's arithmetic can overflow int64. A rejected
  order leaves the book untouched.
"""

from __future__ import annotations

import enum

import numpy as np
from flax import struct


class Side(enum.IntEnum):
    BUY = 0
    SELL = 1


class OrderType(enum.IntEnum):
    LIMIT = 0
    MARKET = 1
    IOC = 2
    POST_ONLY = 3
    CANCEL = 4
    MODIFY = 5


class Status(enum.IntEnum):
    NONE = 0  # row not processed (valid == False)
    ACCEPTED = 1  # rests in full with no fill; or a CANCEL/MODIFY that took effect
    PARTIAL = 2  # filled in part; `resting` says whether the rest rests or was dropped
    FILLED = 3  # filled in full
    CANCELLED = 4  # accepted but nothing filled and nothing rests (MARKET/IOC/STP)
    REJECTED = 5  # refused; `reason` says why; the book is untouched


class Reason(enum.IntEnum):
    NONE = 0
    BAD_KIND = 1
    UNKNOWN_SYMBOL = 2
    BAD_SIDE = 3
    BAD_QTY = 4
    BAD_PRICE = 5
    OFF_TICK = 6
    DUPLICATE_ID = 7
    UNKNOWN_ORDER = 8
    NOT_OWNER = 9
    WOULD_CROSS = 10
    SELF_TRADE = 11
    NO_LIQUIDITY = 12
    # Pre-trade checks of the validate system (the engines never emit these).
    INSUFFICIENT_CASH = 13
    INSUFFICIENT_SHARES = 14  # a sale beyond the position where short selling is off
    POSITION_LIMIT = 15  # a buy that would hold more than the symbol's shares outstanding
    SHORT_LIMIT = 16  # a sale that would take the agent's short beyond its max_short
    NO_BORROW = 17  # a short sale the symbol's borrow pool cannot cover
    # The device engine's fixed capacity (the host engines grow and never emit it).
    BOOK_FULL = 18  # an order that could rest arrived at a book side with no free slot


class STP(enum.IntEnum):
    NONE = 0
    CANCEL_TAKER = 1
    CANCEL_MAKER = 2


@struct.dataclass
class OrderBatch:
    """A tick's orders, one row each; fixed length with a validity mask."""

    valid: np.ndarray  # bool[B]
    id: np.ndarray  # i64[B] order id (new orders) or target id (CANCEL, MODIFY)
    agent: np.ndarray  # i32[B] owning agent row
    symbol: np.ndarray  # i32[B] symbol row
    side: np.ndarray  # i8[B] Side
    kind: np.ndarray  # i8[B] OrderType
    price: np.ndarray  # i64[B] limit price in units (MARKET, CANCEL: ignored)
    qty: np.ndarray  # i64[B] shares (MODIFY: new remaining; CANCEL: ignored)

    def __len__(self) -> int:
        return int(self.valid.shape[0])

    @staticmethod
    def from_numpy(
        *, id, agent, symbol, side, kind, price, qty, valid=None
    ) -> "OrderBatch":
        """Build a host batch from array-likes, casting each field to its contract dtype."""
        id = np.asarray(id, dtype=np.int64)
        n = id.shape[0]
        return OrderBatch(
            valid=np.ones(n, np.bool_) if valid is None else np.asarray(valid, np.bool_),
            id=id,
            agent=np.asarray(agent, np.int32),
            symbol=np.asarray(symbol, np.int32),
            side=np.asarray(side, np.int8),
            kind=np.asarray(kind, np.int8),
            price=np.asarray(price, np.int64),
            qty=np.asarray(qty, np.int64),
        )

    def take(self, index: np.ndarray) -> "OrderBatch":
        """Rows ``index`` (NumPy), in that order."""
        return OrderBatch(**{k: np.asarray(v)[index] for k, v in self.__dict__.items()})


@struct.dataclass
class Outcomes:
    """What happened to each order of a batch; aligned with the batch rows.

    ``filled_value`` is the notional of the row's taker fills, so its average fill price
    is ``filled_value / filled`` (units) where ``filled > 0``. The ``arrival_*`` fields
    describe the row's symbol's book just before the row was processed (after every
    earlier row of the batch): best bid and best ask (0 where that side is empty) and
    ``arrival_depth``, the total shares resting on the side the order would take from
    (the ask side for a buy, the bid side for a sell; for a MODIFY, the side opposite
    the live order's). Slippage against the arrival mid is
    ``filled_value / filled - (arrival_bid + arrival_ask) / 2`` for a buy.

    Rows with ``Status.NONE`` or ``Status.REJECTED`` have zeros in every numeric field.
    An accepted CANCEL records ``arrival_bid``/``arrival_ask`` and has
    ``arrival_depth == 0`` (it takes nothing).
    """

    status: np.ndarray  # i8[B] Status
    reason: np.ndarray  # i8[B] Reason
    filled: np.ndarray  # i64[B] shares filled by this order as taker
    resting: np.ndarray  # i64[B] shares of this order resting right after it was processed
    filled_value: np.ndarray  # i64[B] units*shares: sum of price * qty of its taker fills
    arrival_bid: np.ndarray  # i64[B] units: best bid of its symbol on arrival (0: none)
    arrival_ask: np.ndarray  # i64[B] units: best ask of its symbol on arrival (0: none)
    arrival_depth: np.ndarray  # i64[B] shares resting on the side it takes from, on arrival


@struct.dataclass
class FillBatch:
    """Trades in the order they happened. ``price`` is always the maker's price."""

    taker_id: np.ndarray  # i64[F]
    maker_id: np.ndarray  # i64[F]
    taker_agent: np.ndarray  # i32[F]
    maker_agent: np.ndarray  # i32[F]
    symbol: np.ndarray  # i32[F]
    side: np.ndarray  # i8[F] taker's Side
    price: np.ndarray  # i64[F] units
    qty: np.ndarray  # i64[F] shares

    def __len__(self) -> int:
        return int(self.qty.shape[0])


@struct.dataclass
class OrderUpdates:
    """Final resting quantity, at the end of the batch, of every order the batch touched.

    One row per distinct id: every new order and every MODIFY target in the batch, and
    every resting order that was filled or cancelled in it. ``remaining == 0`` means the
    order is no longer in the book. Rows are in order of first touch. ``price`` and
    ``symbol`` are the live order's at the end of the batch (0 when it is gone), so a
    consumer can mirror the book without looking back at the batch.
    """

    id: np.ndarray  # i64[U]
    remaining: np.ndarray  # i64[U] shares
    price: np.ndarray  # i64[U] units, 0 if not live
    symbol: np.ndarray  # i32[U], 0 if not live


@struct.dataclass
class MatchResult:
    outcomes: Outcomes
    fills: FillBatch
    updates: OrderUpdates


@struct.dataclass
class TopOfBook:
    """Best prices and sizes per symbol; 0 price and 0 qty where a side is empty."""

    bid_price: np.ndarray  # i64[S]
    bid_qty: np.ndarray  # i64[S] total shares at the best bid
    ask_price: np.ndarray  # i64[S]
    ask_qty: np.ndarray  # i64[S]


@struct.dataclass
class Depth:
    """Top ``L`` price levels per side per symbol, best first; zero-padded."""

    bid_price: np.ndarray  # i64[S, L]
    bid_qty: np.ndarray  # i64[S, L]
    ask_price: np.ndarray  # i64[S, L]
    ask_qty: np.ndarray  # i64[S, L]


def check_engine_state(d: dict, name: str, tick_size: np.ndarray, stp: STP) -> None:
    """Refuse an engine ``state_dict`` that belongs to another engine, other tick sizes or
    another self-trade-prevention mode (``ValueError`` naming which)."""
    if d.get("engine") != name:
        raise ValueError(f"engine state is for engine {d.get('engine')!r}, not {name!r}")
    tick = np.asarray(d["tick_size"], np.int64)
    if tick.shape != tick_size.shape or np.any(tick != tick_size):
        raise ValueError(f"engine state has tick sizes {tick.tolist()}, this engine {tick_size.tolist()}")
    if int(d["stp"]) != int(stp):
        raise ValueError(f"engine state has STP mode {STP(int(d['stp'])).name}, this engine {STP(stp).name}")
