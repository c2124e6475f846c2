"""Orders in a tenant schema: rows <-> the aggregate and its saga state. Every
write NOTIFYs ``order_changes`` (payload "<tenant>:<order_id>") in the same
transaction, which is what WatchOrder streams on every replica listen to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import and_, func, select, text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.order.domain.order import Order, OrderLine
from services.order.domain.saga import SagaState, Step
from services.order.domain.status import OrderStatus
from services.order.store.checkout import CHANNEL
from services.order.store.rows import order_of, return_json, saga_of, shipment_json
from services.order.store.tables import order_lines, orders
from services.runtime.sql import Sql


def _order(row: Row[Any], lines: Sequence[OrderLine]) -> Order:
    return order_of(row._mapping, ((li.product_id, li.sku, li.title, li.quantity, li.unit_price_minor)
                                   for li in lines))


def _saga(row: Row[Any]) -> SagaState:
    return saga_of(row._mapping)


async def notify(conn: AsyncConnection, tenant_id: str, order_id: str) -> None:
    await conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": f"{tenant_id}:{order_id}"})


async def _lines(conn: AsyncConnection, order_ids: Sequence[str]) -> dict[str, list[OrderLine]]:
    found: dict[str, list[OrderLine]] = {i: [] for i in order_ids}
    rows = await conn.execute(select(order_lines).where(order_lines.c.order_id.in_(order_ids))
                              .order_by(order_lines.c.order_id, order_lines.c.position))
    for r in rows:
        found[r.order_id].append(OrderLine(r.product_id, r.sku, r.title, r.quantity, r.unit_price_minor))
    return found


async def get(conn: AsyncConnection, order_id: str, *, for_update: bool = False) -> tuple[Order, SagaState] | None:
    query = select(orders).where(orders.c.order_id == order_id)
    row = (await conn.execute(query.with_for_update() if for_update else query)).first()
    if row is None:
        return None
    return _order(row, (await _lines(conn, [order_id]))[order_id]), _saga(row)


async def save(conn: AsyncConnection, tenant_id: str, order: Order, saga: SagaState,
               lease_seconds: float | None = None, *, keep_lease: bool = False) -> Order:
    """Writes the order's mutable fields and saga state; returns it with its new update_time.
    ``lease_seconds`` renews the saga's lease; None releases it (unless ``keep_lease``)."""
    lease = (func.now() + text(f"interval '{float(lease_seconds)} seconds'")) if lease_seconds else None
    lease_change = {} if keep_lease else {"lease_until": lease}
    now = await conn.scalar(
        orders.update().where(orders.c.order_id == order.order_id).values(**lease_change,
            status=order.status.value, payment_id=order.payment_id, failure_reason=order.failure_reason,
            cancel_reason=order.cancel_reason, shipment=shipment_json(order.shipment),
            return_info=return_json(order.return_info), saga_step=saga.step.value, saga_attempts=saga.attempts,
            cancel_requested=saga.cancel_requested, cancelled_by=saga.cancelled_by,
            update_time=func.clock_timestamp(),
        ).returning(orders.c.update_time))
    await notify(conn, tenant_id, order.order_id)
    return replace(order, update_time=now)


async def take_lease(conn: AsyncConnection, order_id: str, lease_seconds: float) -> bool:
    """Takes the saga of an order whose lease has run out (or that has none)."""
    taken = await conn.scalar(
        orders.update().where(and_(orders.c.order_id == order_id, orders.c.saga_step != Step.DONE.value,
                                   (orders.c.lease_until.is_(None)) | (orders.c.lease_until < func.now())))
        .values(lease_until=func.now() + text(f"interval '{float(lease_seconds)} seconds'"))
        .returning(orders.c.order_id))
    return taken is not None


# A schema has a saga the recovery worker may take ($1: idle seconds): for Database.schemas_where.
STALLED_EXISTS = Sql("SELECT FROM {schema}.orders WHERE saga_step <> 'DONE' "
                     "AND (lease_until IS NULL OR lease_until < now()) "
                     "AND update_time < now() - make_interval(secs => $1)")


async def stalled(conn: AsyncConnection, idle_seconds: float, limit: int) -> list[str]:
    """Unfinished sagas nobody holds and nothing touched for ``idle_seconds``; locked, skipping
    rows another recovery worker is looking at."""
    rows = await conn.execute(
        select(orders.c.order_id).where(and_(
            orders.c.saga_step != Step.DONE.value,
            (orders.c.lease_until.is_(None)) | (orders.c.lease_until < func.now()),
            orders.c.update_time < func.now() - text(f"interval '{float(idle_seconds)} seconds'"),
        )).order_by(orders.c.update_time).limit(limit).with_for_update(skip_locked=True))
    return [r.order_id for r in rows]


async def oldest_unfinished_seconds(conn: AsyncConnection) -> float:
    """How long ago the saga of the oldest unfinished order last moved (0 when none is unfinished)."""
    age = await conn.scalar(select(func.extract("epoch", func.now() - func.min(orders.c.update_time))).where(
        orders.c.saga_step != Step.DONE.value))
    return float(age or 0.0)


async def list_page(conn: AsyncConnection, customer_id: str | None, status: OrderStatus | None,
                    before: str | None, limit: int) -> list[Order]:
    """Newest first (order ids are time-ordered), starting after the id ``before``."""
    conditions = []
    if customer_id is not None:
        conditions.append(orders.c.customer_id == customer_id)
    if status is not None:
        conditions.append(orders.c.status == status.value)
    if before is not None:
        conditions.append(orders.c.order_id < before)
    rows = (await conn.execute(select(orders).where(and_(True, *conditions))
                               .order_by(orders.c.order_id.desc()).limit(limit))).all()
    lines = await _lines(conn, [r.order_id for r in rows]) if rows else {}
    return [_order(r, lines[r.order_id]) for r in rows]
