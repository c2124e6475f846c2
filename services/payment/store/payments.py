"""Payments and their refunds in the tenant schema, for the cold paths (SQLAlchemy Core):
AuthorizePayment, CapturePayment, VoidPayment, RefundPayment and webhooks. The hot
statements are in ``charges.py`` and ``reads.py``."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payment.domain.payment import Payment, Refund
from services.payment.domain.request_ids import Recorded
from services.payment.store.rows import payment_of, refund_of
from services.payment.store.tables import payments, refunds


async def insert(conn: AsyncConnection, payment: Payment, authorize_request_id: str, fingerprint: str) -> Payment:
    row = (await conn.execute(payments.insert().values(
        payment_id=payment.payment_id, order_id=payment.order_id, authorize_request_id=authorize_request_id,
        request_fingerprint=fingerprint, status=payment.status.value, currency_code=payment.currency_code,
        amount_minor=payment.amount_minor, captured_minor=payment.captured_minor,
        refunded_minor=payment.refunded_minor, provider=payment.provider,
        provider_reference=payment.provider_reference, decline_reason=payment.decline_reason,
        create_time=func.now(), update_time=func.now(),
    ).returning(*payments.c))).one()
    return payment_of(row._mapping)


async def _with_refunds(conn: AsyncConnection, row: Row[Any]) -> Payment:
    found = await conn.execute(select(refunds).where(refunds.c.payment_id == row.payment_id)
                               .order_by(refunds.c.create_time, refunds.c.refund_id))
    return payment_of(row._mapping, [refund_of(r._mapping) for r in found])


async def get(conn: AsyncConnection, payment_id: str, *, for_update: bool = False) -> Payment | None:
    """With its refunds; ``for_update`` locks the row until the transaction ends."""
    stmt = select(payments).where(payments.c.payment_id == payment_id)
    row = (await conn.execute(stmt.with_for_update() if for_update else stmt)).first()
    return None if row is None else await _with_refunds(conn, row)


async def by_authorize_request(conn: AsyncConnection, request_id: str) -> Recorded | None:
    """The payment an AuthorizePayment or ChargePayment with this request_id made."""
    row = (await conn.execute(select(payments).where(payments.c.authorize_request_id == request_id))).first()
    return None if row is None else Recorded(await _with_refunds(conn, row), row.request_fingerprint)


async def made_by_request(conn: AsyncConnection, request_id: str) -> bool:
    """Whether an AuthorizePayment or ChargePayment with this request_id made a payment."""
    found = await conn.scalar(select(payments.c.payment_id).where(payments.c.authorize_request_id == request_id))
    return found is not None


async def by_reference(conn: AsyncConnection, provider: str, reference: str) -> Payment | None:
    """Locked for update: a webhook is about to change it."""
    row = (await conn.execute(
        select(payments).where(payments.c.provider == provider, payments.c.provider_reference == reference)
        .with_for_update()
    )).first()
    return None if row is None else await _with_refunds(conn, row)


async def save(conn: AsyncConnection, payment: Payment) -> Payment:
    """Stores the status and amounts of ``payment`` (its refunds are inserted separately)."""
    row = (await conn.execute(
        payments.update().where(payments.c.payment_id == payment.payment_id)
        .values(status=payment.status.value, captured_minor=payment.captured_minor,
                refunded_minor=payment.refunded_minor, update_time=func.now())
        .returning(payments.c.update_time)
    )).one()
    return replace(payment, update_time=row.update_time)


async def insert_refund(conn: AsyncConnection, payment_id: str, refund_id: str, amount_minor: int, reason: str,
                        provider_reference: str) -> Refund:
    row = (await conn.execute(refunds.insert().values(
        refund_id=refund_id, payment_id=payment_id, amount_minor=amount_minor, reason=reason,
        provider_reference=provider_reference, create_time=func.now(),
    ).returning(*refunds.c))).one()
    return refund_of(row._mapping)
