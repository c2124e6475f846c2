"""Payments and their refunds in the tenant schema (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payment.domain.listing import ListQuery
from services.payment.domain.payment import Payment, PaymentStatus, Refund
from services.payment.store.tables import payments, refunds


def _payment(row: Row[Any], found: Sequence[Refund] = ()) -> Payment:
    return Payment(
        payment_id=row.payment_id, order_id=row.order_id, status=PaymentStatus(row.status),
        currency_code=row.currency_code, amount_minor=row.amount_minor, captured_minor=row.captured_minor,
        refunded_minor=row.refunded_minor, provider=row.provider, provider_reference=row.provider_reference,
        decline_reason=row.decline_reason, create_time=row.create_time, update_time=row.update_time,
        refunds=tuple(found),
    )


def _refund(row: Row[Any]) -> Refund:
    return Refund(row.refund_id, row.amount_minor, row.reason, row.provider_reference, row.create_time)


async def insert(conn: AsyncConnection, payment: Payment, authorize_request_id: str) -> Payment:
    row = (await conn.execute(payments.insert().values(
        payment_id=payment.payment_id, order_id=payment.order_id, authorize_request_id=authorize_request_id,
        status=payment.status.value, currency_code=payment.currency_code, amount_minor=payment.amount_minor,
        captured_minor=payment.captured_minor, refunded_minor=payment.refunded_minor, provider=payment.provider,
        provider_reference=payment.provider_reference, decline_reason=payment.decline_reason,
        create_time=func.now(), update_time=func.now(),
    ).returning(*payments.c))).one()
    return _payment(row)


async def _with_refunds(conn: AsyncConnection, row: Row[Any]) -> Payment:
    found = await conn.execute(select(refunds).where(refunds.c.payment_id == row.payment_id)
                               .order_by(refunds.c.create_time, refunds.c.refund_id))
    return _payment(row, [_refund(r) for r in found])


async def get(conn: AsyncConnection, payment_id: str, *, for_update: bool = False) -> Payment | None:
    """With its refunds; ``for_update`` locks the row until the transaction ends."""
    stmt = select(payments).where(payments.c.payment_id == payment_id)
    row = (await conn.execute(stmt.with_for_update() if for_update else stmt)).first()
    return None if row is None else await _with_refunds(conn, row)


async def by_authorize_request(conn: AsyncConnection, request_id: str) -> Payment | None:
    row = (await conn.execute(select(payments).where(payments.c.authorize_request_id == request_id))).first()
    return None if row is None else await _with_refunds(conn, row)


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
    return _refund(row)


async def list_page(conn: AsyncConnection, query: ListQuery) -> Sequence[Payment]:
    """Up to query.limit + 1 payments, newest first (one more tells whether another page exists)."""
    c, f = payments.c, query.filter
    stmt = select(payments)
    if f.order_id:
        stmt = stmt.where(c.order_id == f.order_id)
    if f.status is not None:
        stmt = stmt.where(c.status == f.status.value)
    if query.before is not None:
        stmt = stmt.where(c.payment_id < query.before)
    rows = list(await conn.execute(stmt.order_by(c.payment_id.desc()).limit(query.limit + 1)))
    if not rows:
        return []
    by_payment: dict[str, list[Refund]] = {r.payment_id: [] for r in rows}
    found = await conn.execute(select(refunds).where(refunds.c.payment_id.in_(list(by_payment)))
                               .order_by(refunds.c.create_time, refunds.c.refund_id))
    for r in found:
        by_payment[r.payment_id].append(_refund(r))
    return [_payment(r, by_payment[r.payment_id]) for r in rows]
