"""Checkout under concurrency: never oversold, never charged twice."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from commerce.order.v1 import order_pb2 as pb
from commerce.payment.v1 import payment_pb2

from tests.errors import error_details
from tests.order.conftest import TIMEOUT, Shop, place_request


async def test_n_buyers_for_the_last_k_units_k_orders_confirmed_stock_zero_the_rest_out_of_stock(shop: Shop) -> None:
    n, k = 8, 3
    product = await shop.product(stock=k)
    buyers = [shop.customer(f"user-{i}") for i in range(n)]
    for who in buyers:
        await shop.add(who, product, 1)

    results = await asyncio.gather(*(shop.place(who) for who in buyers), return_exceptions=True)

    confirmed = [r for r in results if isinstance(r, pb.Order)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(confirmed) == k and all(o.status == pb.ORDER_STATUS_CONFIRMED for o in confirmed)
    assert len(refused) == n - k
    assert all(e.code() == grpc.StatusCode.FAILED_PRECONDITION and error_details(e)[0].reason == "OUT_OF_STOCK"
               for e in refused)
    await shop.stock_settles(product, on_hand=0, reserved=0)
    assert await shop.count("orders", "status = 'FAILED' AND failure_reason = 'OUT_OF_STOCK'") == n - k


async def test_the_same_request_id_sent_20_times_at_once_makes_one_order_and_one_capture(shop: Shop) -> None:
    product = await shop.product(price=700, stock=10)
    alice = shop.customer()
    await shop.add(alice, product, 2)
    request = place_request(request_id=str(uuid.uuid4()))

    replies = await asyncio.gather(*(shop.orders.PlaceOrder(request, metadata=alice) for _ in range(20)))

    assert {r.order.order_id for r in replies} == {replies[0].order.order_id}
    assert {r.order.status for r in replies} == {pb.ORDER_STATUS_CONFIRMED}
    assert await shop.count("orders") == 1
    payments = await shop.payments_of(replies[0].order.order_id)
    assert len(payments) == 1 and payments[0].captured_amount.amount_minor == 1400
    await shop.stock_settles(product, on_hand=8, reserved=0)


async def test_a_retry_after_the_cart_changed_returns_the_first_order(shop: Shop) -> None:
    product = await shop.product(stock=10)
    alice = shop.customer()
    await shop.add(alice, product, 1)
    request = place_request()
    first = (await shop.orders.PlaceOrder(request, metadata=alice)).order
    await shop.add(alice, product, 3)

    again = (await shop.orders.PlaceOrder(request, metadata=alice)).order

    assert again.order_id == first.order_id and again.lines == first.lines
    await shop.stock_settles(product, on_hand=9, reserved=0)


async def test_a_provider_timeout_resolves_to_one_confirmed_order_charged_once(shop: Shop) -> None:
    product = await shop.product(price=900, stock=4)
    alice = shop.customer()
    await shop.add(alice, product, 1)

    order = await shop.place(alice, token=TIMEOUT)

    final = await shop.get(order.order_id)
    assert final.status == pb.ORDER_STATUS_CONFIRMED
    payments = await shop.payments_of(order.order_id)
    assert [p.status for p in payments] == [payment_pb2.PAYMENT_STATUS_CAPTURED]
    assert payments[0].captured_amount.amount_minor == 900
    await shop.stock_settles(product, on_hand=3, reserved=0)


async def test_a_client_that_gives_up_mid_checkout_does_not_stop_it_and_its_retry_gets_the_order(shop: Shop) -> None:
    product = await shop.product(price=400, stock=2)
    alice = shop.customer()
    await shop.add(alice, product, 1)
    request = place_request(token=TIMEOUT)  # the provider's first answer is late: checkout takes a while

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.orders.PlaceOrder(request, metadata=alice, timeout=0.2)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    retried = (await shop.orders.PlaceOrder(request, metadata=alice)).order
    assert retried.status == pb.ORDER_STATUS_CONFIRMED
    assert await shop.count("orders") == 1
    assert [p.captured_amount.amount_minor for p in await shop.payments_of(retried.order_id)] == [400]
