"""Orders in a tenant schema: rows <-> the aggregate and its saga state. Every
write NOTIFYs ``order_changes`` (payload "<tenant>:<order_id>") in the same
transaction, which is what WatchOrder streams on every replica listen to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from services.order.domain.order import Address, Order, OrderLine, ReturnInfo, ReturnLine, Shipment, Totals
from services.order.domain.saga import SagaState, Step
from services.order.domain.status import OrderStatus
from services.order.domain.totals import Rules, ShippingRule, TaxRate
from services.order.store.tables import checkout_requests, order_lines, orders, tenant_rules

CHANNEL = "order_changes"


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _shipment(data: dict[str, Any] | None) -> Shipment | None:
    if not data:
        return None
    ship_time = _time(data["ship_time"])
    assert ship_time is not None
    return Shipment(data["carrier"], data["tracking_number"], ship_time, _time(data.get("deliver_time")))


def _shipment_json(s: Shipment | None) -> dict[str, Any] | None:
    if s is None:
        return None
    return {"carrier": s.carrier, "tracking_number": s.tracking_number, "ship_time": s.ship_time.isoformat(),
            "deliver_time": s.deliver_time.isoformat() if s.deliver_time else None}


def _return(data: dict[str, Any] | None) -> ReturnInfo | None:
    if not data:
        return None
    request_time = _time(data["request_time"])
    assert request_time is not None
    return ReturnInfo(data["reason"], tuple(ReturnLine(p, q) for p, q in data["lines"]),
                      data["refund_amount_minor"], request_time, _time(data.get("receive_time")))


def _return_json(r: ReturnInfo | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {"reason": r.reason, "lines": [[line.product_id, line.quantity] for line in r.lines],
            "refund_amount_minor": r.refund_amount_minor, "request_time": r.request_time.isoformat(),
            "receive_time": r.receive_time.isoformat() if r.receive_time else None}


def _order(row: Row[Any], lines: Sequence[OrderLine]) -> Order:
    return Order(
        order_id=row.order_id, request_id=row.request_id, customer_id=row.customer_id, email=row.email,
        status=OrderStatus(row.status), lines=tuple(lines), address=Address(**row.address),
        totals=Totals(row.currency_code, row.subtotal_minor, row.shipping_minor, row.tax_minor),
        create_time=row.create_time, update_time=row.update_time, payment_id=row.payment_id,
        failure_reason=row.failure_reason, cancel_reason=row.cancel_reason, shipment=_shipment(row.shipment),
        return_info=_return(row.return_info),
    )


def _saga(row: Row[Any]) -> SagaState:
    return SagaState(Step(row.saga_step), row.saga_attempts, row.cancel_requested, row.cancelled_by)


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


async def order_of_request(conn: AsyncConnection, customer_id: str, request_id: str) -> str | None:
    found = await conn.scalar(select(checkout_requests.c.order_id).where(and_(
        checkout_requests.c.customer_id == customer_id, checkout_requests.c.request_id == request_id)))
    return str(found) if found is not None else None


async def claim_request(conn: AsyncConnection, customer_id: str, request_id: str, order_id: str) -> str:
    """The order id of this checkout request: ``order_id`` when this call claimed it first.
    A concurrent claim of the same key waits on the unique key until the first commits."""
    inserted = await conn.scalar(
        insert(checkout_requests).values(customer_id=customer_id, request_id=request_id, order_id=order_id,
                                         create_time=func.now())
        .on_conflict_do_nothing().returning(checkout_requests.c.order_id))
    if inserted is not None:
        return str(inserted)
    existing = await order_of_request(conn, customer_id, request_id)
    assert existing is not None
    return existing


async def insert_order(conn: AsyncConnection, tenant_id: str, order: Order, saga: SagaState,
                       lease_seconds: float) -> None:
    t = order.totals
    await conn.execute(orders.insert().values(
        order_id=order.order_id, request_id=order.request_id, customer_id=order.customer_id, email=order.email,
        status=order.status.value, currency_code=t.currency_code, subtotal_minor=t.subtotal_minor,
        shipping_minor=t.shipping_minor, tax_minor=t.tax_minor, total_minor=t.total_minor,
        address=asdict(order.address), payment_id="", failure_reason="", cancel_reason="", cancelled_by="",
        saga_step=saga.step.value, saga_attempts=0, cancel_requested=False,
        lease_until=func.now() + text(f"interval '{float(lease_seconds)} seconds'"),
        create_time=order.create_time, update_time=order.update_time,
    ))
    await conn.execute(order_lines.insert(), [
        {"order_id": order.order_id, "position": i, "product_id": line.product_id, "sku": line.sku,
         "title": line.title, "quantity": line.quantity, "unit_price_minor": line.unit_price_minor}
        for i, line in enumerate(order.lines)])
    await notify(conn, tenant_id, order.order_id)


async def save(conn: AsyncConnection, tenant_id: str, order: Order, saga: SagaState,
               lease_seconds: float | None = None, *, keep_lease: bool = False) -> Order:
    """Writes the order's mutable fields and saga state; returns it with its new update_time.
    ``lease_seconds`` renews the saga's lease; None releases it (unless ``keep_lease``)."""
    lease = (func.now() + text(f"interval '{float(lease_seconds)} seconds'")) if lease_seconds else None
    lease_change = {} if keep_lease else {"lease_until": lease}
    now = await conn.scalar(
        orders.update().where(orders.c.order_id == order.order_id).values(**lease_change,
            status=order.status.value, payment_id=order.payment_id, failure_reason=order.failure_reason,
            cancel_reason=order.cancel_reason, shipment=_shipment_json(order.shipment),
            return_info=_return_json(order.return_info), saga_step=saga.step.value, saga_attempts=saga.attempts,
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


async def rules(conn: AsyncConnection) -> Rules:
    rows = (await conn.execute(select(tenant_rules))).all()
    shipping = ShippingRule()
    taxes: list[TaxRate] = []
    for r in rows:
        if r.kind == "shipping":
            shipping = ShippingRule(r.shipping_mode, r.base_minor, r.per_kg_minor, r.free_threshold_minor)
        else:
            taxes.append(TaxRate(r.country_code, r.region, r.rate_bps))
    return Rules(shipping, tuple(taxes))
