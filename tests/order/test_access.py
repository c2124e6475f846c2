"""Who sees which orders; listing newest first with page tokens; bad input."""

from __future__ import annotations

import grpc
import pytest
from commerce.order.v1 import order_pb2 as pb

from tests.errors import error_details
from tests.order.conftest import Shop, place_request


async def test_customer_b_cannot_see_or_cancel_customer_as_order(shop: Shop) -> None:
    product = await shop.product()
    await shop.add(shop.customer("user-a"), product)
    order = await shop.place(shop.customer("user-a"))
    bob = shop.customer("user-b")

    for call in (shop.orders.GetOrder(pb.GetOrderRequest(order_id=order.order_id), metadata=bob),
                 shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), metadata=bob)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await shop.orders.ListOrders(pb.ListOrdersRequest(), metadata=bob)
    assert list(listed.orders) == []
    assert (await shop.get(order.order_id)).status == pb.ORDER_STATUS_CONFIRMED


async def test_another_tenants_order_is_not_found(shop: Shop, mesh: object) -> None:
    product = await shop.product()
    await shop.add(shop.customer(), product)
    order = await shop.place(shop.customer())
    other = shop.mesh.keys.metadata(tenant="ord-nobody-here", roles=["seller"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.orders.GetOrder(pb.GetOrderRequest(order_id=order.order_id), metadata=other)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_lists_are_newest_first_in_pages_customers_their_own_sellers_all(shop: Shop) -> None:
    product = await shop.product(stock=20)
    placed = []
    for who in ("user-a", "user-a", "user-b", "user-a"):
        await shop.add(shop.customer(who), product)
        placed.append((who, (await shop.place(shop.customer(who))).order_id))

    pages, token = [], ""
    while True:
        reply = await shop.orders.ListOrders(pb.ListOrdersRequest(page_size=2, page_token=token),
                                             metadata=shop.customer("user-a"))
        pages.append([o.order_id for o in reply.orders])
        token = reply.next_page_token
        if not token:
            break
    staff = await shop.orders.ListOrders(pb.ListOrdersRequest(), metadata=shop.seller)

    mine = [oid for who, oid in reversed(placed) if who == "user-a"]
    assert pages == [mine[:2], mine[2:]]
    assert [o.order_id for o in staff.orders] == [oid for _, oid in reversed(placed)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.orders.ListOrders(pb.ListOrdersRequest(customer_id="user-b"), metadata=shop.customer("user-a"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_only_staff_ship_and_only_customers_place(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.orders.PlaceOrder(place_request(), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.orders.MarkOrderShipped(pb.MarkOrderShippedRequest(order_id="ord_x", carrier="UPS",
                                                                      tracking_number="1"), metadata=shop.customer())
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


def _bad(**changes: object) -> pb.PlaceOrderRequest:
    request = place_request()
    for path, value in changes.items():
        target: object = request
        *parents, leaf = path.split("__")
        for p in parents:
            target = getattr(target, p)
        setattr(target, leaf, value)
    return request


@pytest.mark.parametrize(("request_", "field"), [
    (_bad(request_id=""), "request_id"),
    (_bad(request_id="x" * 129), "request_id"),
    (_bad(request_id="has space"), "request_id"),
    (_bad(payment_token=""), "payment_token"),
    (_bad(email=""), "email"),
    (_bad(email="not-an-email"), "email"),
    (_bad(shipping_address__recipient=""), "shipping_address.recipient"),
    (_bad(shipping_address__line1=" "), "shipping_address.line1"),
    (_bad(shipping_address__city="c" * 101), "shipping_address.city"),
    (_bad(shipping_address__country_code="usa"), "shipping_address.country_code"),
    (_bad(shipping_address__postal_code="1" * 21), "shipping_address.postal_code"),
    (pb.PlaceOrderRequest(request_id="r1", payment_token="t", email="a@b.co"), "shipping_address"),
])
async def test_bad_checkout_input_is_invalid_argument_naming_the_field_and_writes_nothing(
        shop: Shop, request_: pb.PlaceOrderRequest, field: str) -> None:
    product = await shop.product()
    await shop.add(shop.customer(), product)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.orders.PlaceOrder(request_, metadata=shop.customer())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in [v.field for v in error_details(caught.value)[1].field_violations]
    assert await shop.count("orders") == 0 and await shop.count("checkout_requests") == 0
    assert (await shop.stock(product)).reserved == 0


async def test_bad_lifecycle_input_is_invalid_argument_naming_the_field(shop: Shop) -> None:
    product = await shop.product()
    await shop.add(shop.customer(), product)
    order = await shop.place(shop.customer())
    oid = order.order_id
    cases = [
        (shop.orders.GetOrder(pb.GetOrderRequest(), metadata=shop.seller), "order_id"),
        (shop.orders.MarkOrderShipped(pb.MarkOrderShippedRequest(order_id=oid, tracking_number="1"),
                                      metadata=shop.seller), "carrier"),
        (shop.orders.MarkOrderShipped(pb.MarkOrderShippedRequest(order_id=oid, carrier="U", tracking_number="1" * 65),
                                      metadata=shop.seller), "tracking_number"),
        (shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=oid, reason="r" * 501), metadata=shop.seller),
         "reason"),
        (shop.orders.ListOrders(pb.ListOrdersRequest(page_size=-1), metadata=shop.seller), "page_size"),
        (shop.orders.ListOrders(pb.ListOrdersRequest(page_token="garbage"), metadata=shop.seller), "page_token"),
    ]
    for call, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert [v.field for v in error_details(caught.value)[1].field_violations] == [field]
    assert (await shop.get(oid)).status == pb.ORDER_STATUS_CONFIRMED


async def test_bad_return_lines_name_the_line(shop: Shop) -> None:
    product = await shop.product()
    await shop.add(shop.customer(), product, 2)
    oid = (await shop.place(shop.customer())).order_id
    await shop.orders.MarkOrderShipped(pb.MarkOrderShippedRequest(order_id=oid, carrier="U", tracking_number="1"),
                                       metadata=shop.seller)
    await shop.orders.MarkOrderDelivered(pb.MarkOrderDeliveredRequest(order_id=oid), metadata=shop.seller)
    for lines, field in (([pb.ReturnLine(product_id=product, quantity=1)], "reason"),
                         ([pb.ReturnLine(product_id=product, quantity=3)], "lines[0].quantity"),
                         ([pb.ReturnLine(product_id="prd_other", quantity=1)], "lines[0].product_id")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await shop.orders.RequestReturn(pb.RequestReturnRequest(order_id=oid, reason="" if field == "reason"
                                                                    else "r", lines=lines),
                                            metadata=shop.customer())
        assert [v.field for v in error_details(caught.value)[1].field_violations] == [field]
    assert (await shop.get(oid)).status == pb.ORDER_STATUS_DELIVERED
