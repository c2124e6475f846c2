"""Carts after checkout: when an order is confirmed (OrderConfirmed, from the
order service's outbox), the units it bought leave the buyer's cart; units
added since the order was placed stay. Runs as the handler of a durable
consumer, inside the tenant transaction that also records the event in the
inbox, so a redelivered event changes nothing."""

from __future__ import annotations

from collections import Counter

from commerce.order.v1 import order_events_pb2
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart.domain.cart import remaining_after_order
from services.cart.store import carts as store

DURABLE = "cart-order-confirmed"
EVENT = order_events_pb2.OrderConfirmed


def ordered_units(order: Message) -> dict[str, int]:
    units: Counter[str] = Counter()
    for line in getattr(order, "lines", ()):
        units[line.product_id] += line.quantity
    return dict(units)


async def on_order_confirmed(conn: AsyncConnection, event: Message, tenant_id: str) -> None:
    if not isinstance(event, EVENT) or not event.order.customer_id:
        return
    cart = await store.load(conn, event.order.customer_id, for_update=True)
    if cart is None:
        return
    after = remaining_after_order(cart, ordered_units(event.order))
    if after.lines != cart.lines:
        await store.save(conn, cart, after)
