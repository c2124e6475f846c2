"""WatchOrder: the current state first, then every change, until a final status."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from commerce.order.v1 import order_pb2 as pb
from commerce.order.v1 import order_pb2_grpc

from services.order.app import assemble
from services.runtime.db import Database
from services.runtime.server import create_server
from tests.errors import error_details
from tests.order.conftest import TUNING, Shop


async def test_watch_streams_each_status_change_and_ends_when_delivered(shop: Shop) -> None:
    product = await shop.product()
    await shop.add(shop.customer(), product)
    oid = (await shop.place(shop.customer())).order_id
    stream = shop.orders.WatchOrder(pb.WatchOrderRequest(order_id=oid), metadata=shop.customer())
    seen: list[int] = []

    async def follow() -> None:
        async for reply in stream:
            seen.append(reply.order.status)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    await shop.orders.MarkOrderShipped(pb.MarkOrderShippedRequest(order_id=oid, carrier="UPS", tracking_number="1"),
                                       metadata=shop.seller)
    await asyncio.sleep(0.2)
    await shop.orders.MarkOrderDelivered(pb.MarkOrderDeliveredRequest(order_id=oid), metadata=shop.seller)
    await asyncio.wait_for(follower, 5)

    assert seen == [pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_SHIPPED, pb.ORDER_STATUS_DELIVERED]


async def test_watching_another_customers_order_is_not_found(shop: Shop) -> None:
    product = await shop.product()
    await shop.add(shop.customer(), product)
    oid = (await shop.place(shop.customer())).order_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in shop.orders.WatchOrder(pb.WatchOrderRequest(order_id=oid), metadata=shop.customer("user-b")):
            pass
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_watch_of_a_final_order_sends_it_once_and_ends(shop: Shop) -> None:
    product = await shop.product()
    await shop.add(shop.customer(), product)
    oid = (await shop.place(shop.customer())).order_id
    await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=oid), metadata=shop.customer())
    replies = [r async for r in shop.orders.WatchOrder(pb.WatchOrderRequest(order_id=oid), metadata=shop.seller)]
    assert [r.order.status for r in replies] == [pb.ORDER_STATUS_CANCELLED]


async def test_a_watch_on_one_replica_sees_changes_made_through_another(shop: Shop) -> None:
    mesh = shop.mesh
    db = Database(mesh.settings.database_url, mesh.settings.database_name("order"), 2)
    app, _ = assemble(db, mesh.keys.verifier(), mesh.peers, tuning=TUNING, recover_in_background=False)
    app.on_stop = [s for s in app.on_stop if getattr(s, "__self__", None) is not mesh.peers]  # shared peers
    replica = await create_server(app, "127.0.0.1:0", 0.5)
    try:
        product = await shop.product()
        await shop.add(shop.customer(), product)
        oid = (await shop.place(shop.customer())).order_id
        async with grpc.aio.insecure_channel(f"127.0.0.1:{replica.port}") as channel:
            stream = order_pb2_grpc.OrderServiceStub(channel).WatchOrder(pb.WatchOrderRequest(order_id=oid),
                                                                          metadata=shop.seller)
            first = await asyncio.wait_for(stream.read(), 5)
            await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=oid), metadata=shop.seller)
            rest = []
            while (reply := await asyncio.wait_for(stream.read(), 5)) is not grpc.aio.EOF:
                rest.append(reply)
        assert first.order.status == pb.ORDER_STATUS_CONFIRMED
        assert [r.order.status for r in rest][-1] == pb.ORDER_STATUS_CANCELLED
    finally:
        await replica.stop(0)


async def test_watch_without_an_order_id_is_invalid_argument_naming_it(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in shop.orders.WatchOrder(pb.WatchOrderRequest(), metadata=shop.seller):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error_details(caught.value)[1].field_violations] == ["order_id"]
