"""A confirmed order whose units the catalog could not take after all (StockShortfall:
its reservation had lapsed before the catalog consumed OrderConfirmed, e.g. after a
long NATS outage, and the units were sold meanwhile): the order is cancelled with
reason OUT_OF_STOCK and refunded in full. Nothing was taken from stock, so nothing is
put back (the compensation's release of a lapsed reservation changes nothing).

The handler runs in the consumer's transaction with its inbox row: it hands the order
to the saga's COMPENSATE step (as cancelled), which the recovery worker runs (refund,
OrderCancelled and OrderRefunded, and so the customer's emails)."""

from __future__ import annotations

import structlog
from commerce.catalog.v1 import catalog_events_pb2
from google.protobuf.message import Message

from services.runtime.sql import Session, Sql

log = structlog.get_logger("commerce.order.shortfall")
DURABLE = "order-stock-shortfall"
EVENT = catalog_events_pb2.StockShortfall
REASON = "OUT_OF_STOCK"
CANCELLED_BY = "catalog"

TO_COMPENSATION = Sql(f"""
UPDATE {{schema}}.orders SET saga_step = 'COMPENSATE', saga_attempts = 0, cancel_requested = true,
  cancelled_by = '{CANCELLED_BY}', cancel_reason = '{REASON}', lease_until = NULL, update_time = now()
WHERE order_id = $1 AND status = 'CONFIRMED' AND saga_step = 'DONE'
RETURNING order_id
""")
STATUS = Sql("SELECT status FROM {schema}.orders WHERE order_id = $1")


async def on_stock_shortfall(session: Session, event: Message, tenant_id: str) -> None:
    if not isinstance(event, EVENT):
        return
    order_id = event.reservation_id
    if await session.fetchval(TO_COMPENSATION, order_id) is not None:
        log.warning("confirmed order short of stock: cancelled and refunded", tenant_id=tenant_id,
                    order_id=order_id, product_id=event.product_id, available=event.available)
        return
    status = await session.fetchval(STATUS, order_id)
    log.error("stock shortfall for an order that is not CONFIRMED; nothing done", tenant_id=tenant_id,
              order_id=order_id, status=status)
