"""The checkout saga and the order's other multi-service tasks, as persisted steps.

The order row holds ``saga_step``: what must happen next. A checkout is at RESERVE
from its acceptance until its outcome is written (reserve, charge and confirm run
in memory, each remote call idempotent by the order id); AUTHORIZE, CAPTURE and
COMMIT are the checkout steps older versions persisted, resumed the same way. A
failure (or a cancellation asked for while checkout runs) goes to COMPENSATE, which
voids or refunds any payment of the order, releases its reservation and ends
FAILED (or CANCELLED).
A CONFIRMED order being cancelled goes to CANCEL (refund + restock), a received
return to RETURN (restock + refund). Every remote call is idempotent by a key
derived from the order id, so a step may run again after a crash or a timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    RESERVE = "RESERVE"
    AUTHORIZE = "AUTHORIZE"
    CAPTURE = "CAPTURE"
    COMMIT = "COMMIT"
    COMPENSATE = "COMPENSATE"
    CANCEL = "CANCEL"
    RETURN = "RETURN"
    DONE = "DONE"


CHECKOUT_STEPS = frozenset({Step.RESERVE, Step.AUTHORIZE, Step.CAPTURE, Step.COMMIT})

OUT_OF_STOCK = "OUT_OF_STOCK"
PAYMENT_DECLINED = "PAYMENT_DECLINED"
INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
PAYMENT_FAILED = "PAYMENT_FAILED"
CHECKOUT_UNAVAILABLE = "CHECKOUT_UNAVAILABLE"
RESERVATION_EXPIRED = "RESERVATION_EXPIRED"


def decline_reason(payment_status: str, provider_reason: str) -> str:
    """failure_reason of an order whose authorization was refused."""
    if payment_status == "DECLINED":
        return INSUFFICIENT_FUNDS if "INSUFFICIENT" in provider_reason.upper() else PAYMENT_DECLINED
    return PAYMENT_FAILED


def idempotency_key(order_id: str, purpose: str) -> str:
    """Key of one remote effect of an order (at most 64 characters: ids are 30)."""
    return f"{order_id}:{purpose}"[:64]


@dataclass(frozen=True)
class SagaState:
    step: Step
    attempts: int = 0
    cancel_requested: bool = False
    cancelled_by: str = ""
