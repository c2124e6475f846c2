"""OrderConfirmed events, as the order service's relay publishes them on
JetStream, take the bought units out of the buyer's cart."""

from __future__ import annotations

import asyncio
import uuid

from commerce.common.v1 import event_pb2
from commerce.order.v1 import order_events_pb2, order_pb2
from nats.js import JetStreamContext

from services.runtime.events import naming
from tests.cart.conftest import Shop


async def publish_confirmed(js: JetStreamContext, tenant: str, customer_id: str, *lines: tuple[str, int],
                            event_id: str | None = None, msg_id: str | None = None) -> None:
    event_id = event_id or str(uuid.uuid4())
    event = order_events_pb2.OrderConfirmed(
        metadata=event_pb2.EventMetadata(event_id=event_id, event_type="commerce.order.v1.OrderConfirmed",
                                         tenant_id=tenant, aggregate_id="ord_1"),
        order=order_pb2.Order(order_id="ord_1", customer_id=customer_id, status=order_pb2.ORDER_STATUS_CONFIRMED,
                              lines=[order_pb2.OrderLine(product_id=pid, quantity=qty) for pid, qty in lines]))
    await js.publish(naming.subject_for(event.DESCRIPTOR, tenant), event.SerializeToString(), headers={
        naming.MSG_ID: event_id, naming.EVENT_TYPE: event.DESCRIPTOR.full_name, naming.TENANT: tenant})


async def eventually_quantities(shop: Shop, want: list[int], seconds: float = 10.0) -> None:
    got: list[int] = []
    for _ in range(int(seconds / 0.05)):
        got = [line.quantity for line in (await shop.get()).lines]
        if got == want:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"cart quantities {got}, expected {want}")


async def test_a_confirmed_order_empties_the_buyers_cart(shop: Shop, js: JetStreamContext) -> None:
    shoe, sock = await shop.product(), await shop.product()
    await shop.add(shoe.product_id, 2)
    await shop.add(sock.product_id, 1)
    await shop.add(sock.product_id, 4, who=shop.customer("bob"))
    await publish_confirmed(js, shop.tenant, "user-alice", (shoe.product_id, 2), (sock.product_id, 1))
    await eventually_quantities(shop, [])
    assert [line.quantity for line in (await shop.get(shop.customer("bob"))).lines] == [4]

