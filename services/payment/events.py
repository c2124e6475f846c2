"""The payment service's integration events, written to the outbox with the change
they report (published by the relay). Nothing in the mesh subscribes to them today:
they are the audit trail of money moving (README, "Events")."""

from __future__ import annotations

from commerce.payment.v1 import payment_events_pb2 as ev
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payment.convert import payment_pb, refund_pb
from services.payment.domain.payment import Payment, PaymentStatus, Refund
from services.runtime.events.outbox import OutboxRow, emit, outbox_row
from services.runtime.protos import money_pb


def _captured(payment: Payment) -> ev.PaymentCaptured:
    return ev.PaymentCaptured(payment=payment_pb(payment), amount=money_pb(payment.currency_code,
                                                                           payment.captured_minor))


def charged(tenant_id: str, payment: Payment) -> OutboxRow:
    """ChargePayment's one event: PaymentCaptured (money moved), or PaymentDeclined (refused or failed)."""
    event = _captured(payment) if payment.status is PaymentStatus.CAPTURED else \
        ev.PaymentDeclined(payment=payment_pb(payment))
    return outbox_row(event, tenant_id=tenant_id, aggregate_id=payment.payment_id)


# --- cold paths (SQLAlchemy) -------------------------------------------------------------

async def authorized_or_declined(conn: AsyncConnection, tenant_id: str, payment: Payment) -> None:
    if payment.status is PaymentStatus.AUTHORIZED:
        await emit(conn, ev.PaymentAuthorized(payment=payment_pb(payment)), tenant_id=tenant_id,
                   aggregate_id=payment.payment_id)
    else:
        await emit(conn, ev.PaymentDeclined(payment=payment_pb(payment)), tenant_id=tenant_id,
                   aggregate_id=payment.payment_id)


async def captured(conn: AsyncConnection, tenant_id: str, payment: Payment) -> None:
    await emit(conn, _captured(payment), tenant_id=tenant_id, aggregate_id=payment.payment_id)


async def voided(conn: AsyncConnection, tenant_id: str, payment: Payment) -> None:
    await emit(conn, ev.PaymentVoided(payment=payment_pb(payment)), tenant_id=tenant_id,
               aggregate_id=payment.payment_id)


async def refunded(conn: AsyncConnection, tenant_id: str, payment: Payment, refund: Refund) -> None:
    await emit(conn, ev.PaymentRefunded(payment=payment_pb(payment), refund=refund_pb(refund, payment.currency_code)),
               tenant_id=tenant_id, aggregate_id=payment.payment_id)
