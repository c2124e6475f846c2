"""Reads of payments on the hot path (services/runtime/sql.py, statements prepared once):
GetPayment, ListPayments (the order service lists an order's payments to compensate and
recover a checkout) and ChargePayment's look-up. A payment's refunds are read only when
it has some (``refunded_minor`` is their sum, kept in the same transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.payment.domain.listing import ListQuery
from services.payment.domain.payment import Payment, Refund
from services.payment.store.rows import PAYMENT_COLUMNS, REFUND_COLUMNS, payment_of, refund_of
from services.runtime.sql import Session, Sql

BY_ID = Sql(f"SELECT {PAYMENT_COLUMNS} FROM {{schema}}.payments WHERE payment_id = $1")
# Newest first (ids are time-ordered); NULL status: any; NULL before: from the newest.
PAGE_OF_ORDER = Sql(f"SELECT {PAYMENT_COLUMNS} FROM {{schema}}.payments WHERE order_id = $1 "
                    "AND ($2::text IS NULL OR status = $2) AND ($3::text IS NULL OR payment_id < $3) "
                    "ORDER BY payment_id DESC LIMIT $4")
PAGE = Sql(f"SELECT {PAYMENT_COLUMNS} FROM {{schema}}.payments "
           "WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR payment_id < $2) "
           "ORDER BY payment_id DESC LIMIT $3")
REFUNDS = Sql(f"SELECT {REFUND_COLUMNS} FROM {{schema}}.refunds WHERE payment_id = ANY($1::text[]) "
              "ORDER BY create_time, refund_id")


async def with_refunds(session: Session, rows: Sequence[Any]) -> list[Payment]:
    """``rows`` of payments as domain objects, each with its refunds, oldest first."""
    refunded = [r["payment_id"] for r in rows if r["refunded_minor"] > 0]
    by_payment: dict[str, list[Refund]] = {}
    if refunded:
        for r in await session.fetch(REFUNDS, refunded):
            by_payment.setdefault(r["payment_id"], []).append(refund_of(r))
    return [payment_of(r, by_payment.get(r["payment_id"], ())) for r in rows]


async def get(session: Session, payment_id: str) -> Payment | None:
    row = await session.fetchrow(BY_ID, payment_id)
    return None if row is None else (await with_refunds(session, [row]))[0]


async def page(session: Session, query: ListQuery) -> list[Payment]:
    """Up to query.limit + 1 payments, newest first (one more tells whether another page exists)."""
    status = query.filter.status.value if query.filter.status is not None else None
    if query.filter.order_id:
        rows = await session.fetch(PAGE_OF_ORDER, query.filter.order_id, status, query.before, query.limit + 1)
    else:
        rows = await session.fetch(PAGE, status, query.before, query.limit + 1)
    return await with_refunds(session, rows)
