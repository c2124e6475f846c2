"""The order's integration events, written to the outbox in the transaction of the
change they announce. Each carries the order as it is after the change."""

from __future__ import annotations

from commerce.order.v1 import order_events_pb2 as ev
from sqlalchemy.ext.asyncio import AsyncConnection

from services.order.convert import order_pb
from services.order.domain.order import Order
from services.order.domain.status import OrderStatus
from services.runtime.events.outbox import emit
from services.runtime.protos import money_pb

# PENDING has none: OrderPlaced is no longer published (OrderConfirmed / OrderFailed carry the order).
_BY_STATUS = {
    OrderStatus.CONFIRMED: ev.OrderConfirmed,
    OrderStatus.FAILED: ev.OrderFailed, OrderStatus.SHIPPED: ev.OrderShipped,
    OrderStatus.DELIVERED: ev.OrderDelivered, OrderStatus.RETURN_REQUESTED: ev.ReturnRequested,
}


async def status_changed(conn: AsyncConnection, tenant_id: str, order: Order, cancelled_by: str = "") -> None:
    """The event announcing the order's (new) status, if that status has one."""
    if order.status is OrderStatus.CANCELLED:
        await emit(conn, ev.OrderCancelled(order=order_pb(order), cancelled_by=cancelled_by),
                   tenant_id=tenant_id, aggregate_id=order.order_id)
        return
    kind = _BY_STATUS.get(order.status)
    if kind is not None:
        await emit(conn, kind(order=order_pb(order)), tenant_id=tenant_id, aggregate_id=order.order_id)


async def refunded(conn: AsyncConnection, tenant_id: str, order: Order, amount_minor: int) -> None:
    await emit(conn, ev.OrderRefunded(order=order_pb(order), payment_id=order.payment_id,
                                      amount=money_pb(order.totals.currency_code, amount_minor)),
               tenant_id=tenant_id, aggregate_id=order.order_id)
