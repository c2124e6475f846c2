"""A payment and its state machine (pure: no I/O).

    AUTHORIZED -> CAPTURED -> PARTIALLY_REFUNDED -> REFUNDED
    AUTHORIZED -> VOIDED
    (authorization) -> DECLINED | FAILED

Every change goes through a method here; an illegal one is FAILED_PRECONDITION
(reason INVALID_PAYMENT_STATUS, or the more specific reason the proto names).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from services.runtime.errors import FailedPrecondition


class PaymentStatus(enum.Enum):
    AUTHORIZED = "AUTHORIZED"
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    DECLINED = "DECLINED"
    FAILED = "FAILED"


CAPTURED_STATES = frozenset({PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED})
NOTHING_HELD = frozenset({PaymentStatus.VOIDED, PaymentStatus.DECLINED, PaymentStatus.FAILED})


@dataclass(frozen=True)
class Money:
    currency_code: str
    amount_minor: int


@dataclass(frozen=True)
class Refund:
    refund_id: str
    amount_minor: int
    reason: str
    provider_reference: str
    create_time: datetime


@dataclass(frozen=True)
class Payment:
    payment_id: str
    order_id: str
    status: PaymentStatus
    currency_code: str
    amount_minor: int
    captured_minor: int
    refunded_minor: int
    provider: str
    provider_reference: str
    decline_reason: str
    create_time: datetime
    update_time: datetime
    refunds: tuple[Refund, ...] = ()

    @property
    def refundable_minor(self) -> int:
        return self.captured_minor - self.refunded_minor

    def _refuse(self, action: str, reason: str = "INVALID_PAYMENT_STATUS") -> FailedPrecondition:
        return FailedPrecondition(f"a {self.status.value} payment cannot be {action}", reason=reason,
                                  metadata={"payment_id": self.payment_id, "status": self.status.value})

    def check_order(self, order_id: str) -> None:
        """The guard against crossed ids on capture and void."""
        if order_id != self.order_id:
            raise FailedPrecondition("the payment belongs to another order", reason="PAYMENT_ORDER_MISMATCH",
                                     metadata={"payment_id": self.payment_id, "order_id": order_id[:64]})

    def captured(self, amount_minor: int | None) -> Payment:
        """AUTHORIZED -> CAPTURED for ``amount_minor`` (None: the whole authorized amount)."""
        if self.status in CAPTURED_STATES:
            raise self._refuse("captured again", "PAYMENT_ALREADY_CAPTURED")
        if self.status is not PaymentStatus.AUTHORIZED:
            raise self._refuse("captured")
        amount = self.amount_minor if amount_minor is None else amount_minor
        if amount > self.amount_minor:
            raise FailedPrecondition(f"cannot capture {amount}: only {self.amount_minor} is authorized",
                                     reason="CAPTURE_EXCEEDS_AUTHORIZED",
                                     metadata={"payment_id": self.payment_id, "authorized": str(self.amount_minor)})
        return replace(self, status=PaymentStatus.CAPTURED, captured_minor=amount)

    def voided(self) -> Payment:
        """AUTHORIZED -> VOIDED; a payment that holds nothing stays as it is."""
        if self.status in NOTHING_HELD:
            return self
        if self.status in CAPTURED_STATES:
            raise self._refuse("voided (refund it instead)", "PAYMENT_ALREADY_CAPTURED")
        return replace(self, status=PaymentStatus.VOIDED)

    def refund_amount(self, amount_minor: int | None) -> int:
        """How much a refund of ``amount_minor`` (None: all that is left) gives back; refuses too much."""
        if self.status not in CAPTURED_STATES:
            raise self._refuse("refunded: it was never captured", "PAYMENT_NOT_CAPTURED")
        amount = self.refundable_minor if amount_minor is None else amount_minor
        if amount <= 0 or amount > self.refundable_minor:
            raise FailedPrecondition(
                f"cannot refund {amount}: {self.refundable_minor} of the captured {self.captured_minor} is left",
                reason="REFUND_EXCEEDS_CAPTURED",
                metadata={"payment_id": self.payment_id, "captured": str(self.captured_minor),
                          "refunded": str(self.refunded_minor)})
        return amount

    def refunded(self, refund: Refund) -> Payment:
        """CAPTURED / PARTIALLY_REFUNDED -> PARTIALLY_REFUNDED or REFUNDED, with ``refund`` added."""
        self.refund_amount(refund.amount_minor)
        total = self.refunded_minor + refund.amount_minor
        status = PaymentStatus.REFUNDED if total == self.captured_minor else PaymentStatus.PARTIALLY_REFUNDED
        return replace(self, status=status, refunded_minor=total, refunds=(*self.refunds, refund))
