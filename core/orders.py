"""The order lifecycle as an explicit transition table, and the broker's order record.

An order is born NEW when the broker accepts it. Fills move it to PARTIALLY_FILLED (part of
the quantity) or FILLED (the rest); an open order may be CANCELED; only a NEW order can be
REJECTED (a partly filled order whose remainder cannot be placed is canceled instead). FILLED,
CANCELED and REJECTED are terminal. Every change goes through ``transition``, which raises
``OrderTransitionError`` naming the order and both states for anything the table forbids.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from core.errors import RaytraderError
from core.events import FillReason, OrderAccepted, OrderStatus

__all__ = [
    "ORDER_TRANSITIONS",
    "TERMINAL_STATUSES",
    "Order",
    "OrderTransitionError",
    "fill_order",
    "transition",
]

#: Allowed moves: status -> statuses it may become. PARTIALLY_FILLED -> PARTIALLY_FILLED is a
#: further partial fill.
ORDER_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELED,
            OrderStatus.REJECTED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, OrderStatus.CANCELED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
}
TERMINAL_STATUSES = frozenset(s for s, nxt in ORDER_TRANSITIONS.items() if not nxt)


class OrderTransitionError(RaytraderError, ValueError):
    """A lifecycle change the transition table forbids, or a fill that does not fit the order."""

    def __init__(self, client_order_id: str, old: OrderStatus, new: OrderStatus, why: str = ""):
        self.client_order_id = client_order_id
        self.old = old
        self.new = new
        detail = f": {why}" if why else ""
        super().__init__(
            f"order {client_order_id}: illegal transition {old.value} -> {new.value}{detail}"
        )


class Order(BaseModel):
    """The broker's record of one order (immutable; every change makes a new record).

    ``qty`` is signed (+ buys, - sells); ``filled_qty`` has the same sign. ``n_fills`` numbers
    the fills, whose ids are ``<client_order_id>:<n>``. ``bar_index`` is the bar it was
    accepted on; ``detail`` says why it was rejected or canceled.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_order_id: str = Field(min_length=1, max_length=128)
    strategy_id: str
    symbol: str
    qty: float
    filled_qty: float = 0.0
    n_fills: int = Field(0, ge=0)
    status: OrderStatus = OrderStatus.NEW
    reason: FillReason = FillReason.SIGNAL
    bar_index: int = Field(ge=0)
    detail: str = ""

    @classmethod
    def accepted(cls, event: OrderAccepted) -> Order:
        """The NEW order an ``OrderAccepted`` event describes."""
        return cls(
            client_order_id=event.client_order_id, strategy_id=event.strategy_id,
            symbol=event.symbol, qty=event.qty, reason=event.reason, bar_index=event.bar_index,
        )  # fmt: skip

    @property
    def remaining_qty(self) -> float:
        """Signed quantity still to fill (0 once terminal)."""
        return 0.0 if self.is_terminal else self.qty - self.filled_qty

    @property
    def is_terminal(self) -> bool:
        """FILLED, CANCELED or REJECTED: nothing more can happen to it."""
        return self.status in TERMINAL_STATUSES

    @property
    def next_fill_id(self) -> str:
        """The id the next fill of this order gets."""
        return f"{self.client_order_id}:{self.n_fills + 1}"


def transition(
    order: Order, new: OrderStatus, *, fill_qty: float = 0.0, detail: str = ""
) -> Order:
    """Apply one lifecycle step: a fill (``fill_qty`` != 0), a cancel or a rejection.

    A fill must carry the order's sign and at most its remaining quantity; a fill of exactly
    the remaining quantity must be FILLED, less PARTIALLY_FILLED. Raises OrderTransitionError
    naming the order, the current and the requested status.
    """
    old = order.status
    if new not in ORDER_TRANSITIONS[old]:
        raise OrderTransitionError(order.client_order_id, old, new)
    filling = new in (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)
    if not filling:
        if fill_qty != 0:
            raise OrderTransitionError(order.client_order_id, old, new, "a fill cannot cancel")
        return order.model_copy(update={"status": new, "detail": detail})
    remaining = order.remaining_qty
    if not (math.isfinite(fill_qty) and fill_qty != 0 and (fill_qty > 0) == (remaining > 0)):
        why = f"fill qty {fill_qty!r} does not match remaining {remaining!r}"
        raise OrderTransitionError(order.client_order_id, old, new, why)
    complete = fill_qty == remaining
    if abs(fill_qty) > abs(remaining) or complete != (new is OrderStatus.FILLED):
        why = f"fill qty {fill_qty!r} against remaining {remaining!r}"
        raise OrderTransitionError(order.client_order_id, old, new, why)
    filled = order.qty if complete else order.filled_qty + fill_qty
    update = {"status": new, "filled_qty": filled, "n_fills": order.n_fills + 1}
    return order.model_copy(update=update)


def fill_order(order: Order, fill_qty: float) -> Order:
    """Record a fill: FILLED when it is exactly the remaining quantity, else PARTIALLY_FILLED."""
    complete = fill_qty == order.remaining_qty
    status = OrderStatus.FILLED if complete else OrderStatus.PARTIALLY_FILLED
    return transition(order, status, fill_qty=fill_qty)
