"""Where an order is in its life, and which moves are allowed (order.proto):

    PENDING -> CONFIRMED -> SHIPPED -> DELIVERED       (checkout: reserve and charge, then confirm)
    PENDING -> RESERVED -> PAID -> CONFIRMED          (checkouts of older versions, persisted per step)
    PENDING | RESERVED | PAID -> FAILED
    PENDING | RESERVED | PAID | CONFIRMED -> CANCELLED
    DELIVERED -> RETURN_REQUESTED -> RETURNED -> REFUNDED
"""

from __future__ import annotations

from enum import StrEnum

from services.runtime.errors import FailedPrecondition


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    RESERVED = "RESERVED"
    PAID = "PAID"
    CONFIRMED = "CONFIRMED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    RETURN_REQUESTED = "RETURN_REQUESTED"
    RETURNED = "RETURNED"
    REFUNDED = "REFUNDED"


S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.CONFIRMED, S.RESERVED, S.FAILED, S.CANCELLED}),
    S.RESERVED: frozenset({S.PAID, S.FAILED, S.CANCELLED}),
    S.PAID: frozenset({S.CONFIRMED, S.FAILED, S.CANCELLED}),
    S.CONFIRMED: frozenset({S.SHIPPED, S.CANCELLED}),
    S.SHIPPED: frozenset({S.DELIVERED}),
    S.DELIVERED: frozenset({S.RETURN_REQUESTED}),
    S.RETURN_REQUESTED: frozenset({S.RETURNED}),
    S.RETURNED: frozenset({S.REFUNDED}),
    S.CANCELLED: frozenset(),
    S.FAILED: frozenset(),
    S.REFUNDED: frozenset(),
}
# A WatchOrder stream ends at these (a return starts a new watch from DELIVERED).
WATCH_ENDS = frozenset({S.DELIVERED, S.CANCELLED, S.FAILED, S.REFUNDED})
CANCELLABLE = frozenset({S.PENDING, S.RESERVED, S.PAID, S.CONFIRMED})


def invalid_status(current: OrderStatus, wanted: OrderStatus | str) -> FailedPrecondition:
    return FailedPrecondition(f"an order that is {current.value} cannot become {wanted}",
                              reason="INVALID_ORDER_STATUS", metadata={"status": current.value})


def check_move(current: OrderStatus, target: OrderStatus) -> None:
    if target not in TRANSITIONS[current]:
        raise invalid_status(current, target.value)
