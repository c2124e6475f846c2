"""Messages <-> domain objects, and nothing else."""

from __future__ import annotations

from commerce.common.v1 import money_pb2
from commerce.payment.v1 import payment_pb2 as pb

from services.payment.domain.payment import Money, Payment, Refund
from services.runtime.protos import EnumNames, money_pb

_STATUSES = EnumNames(pb.PaymentStatus, "PAYMENT_STATUS_")


def status_name(number: int) -> str:
    """"CAPTURED" for PAYMENT_STATUS_CAPTURED; an unknown number (open enums) as its digits."""
    return _STATUSES.name(number)


def money_in(message: money_pb2.Money) -> Money:
    return Money(message.currency_code, message.amount_minor)


def optional_money(holder: object, field: str) -> Money | None:
    if not holder.HasField(field):  # type: ignore[attr-defined]
        return None
    return money_in(getattr(holder, field))


def refund_pb(refund: Refund, currency_code: str) -> pb.Refund:
    message = pb.Refund(refund_id=refund.refund_id, amount=money_pb(currency_code, refund.amount_minor),
                        reason=refund.reason, provider_reference=refund.provider_reference)
    message.create_time.FromDatetime(refund.create_time)
    return message


def payment_pb(payment: Payment) -> pb.Payment:
    c = payment.currency_code
    message = pb.Payment(
        name=f"payments/{payment.payment_id}", payment_id=payment.payment_id, order_id=payment.order_id,
        status=_STATUSES.number(payment.status.value),
        amount=money_pb(c, payment.amount_minor), captured_amount=money_pb(c, payment.captured_minor),
        refunded_amount=money_pb(c, payment.refunded_minor), provider=payment.provider,
        provider_reference=payment.provider_reference, decline_reason=payment.decline_reason,
        refunds=[refund_pb(r, c) for r in payment.refunds],
    )
    message.create_time.FromDatetime(payment.create_time)
    message.update_time.FromDatetime(payment.update_time)
    return message
