"""After checkout: cancel, ship, deliver, return; refunds and restocking."""

from __future__ import annotations

import grpc
import pytest
from commerce.common.v1 import money_pb2
from commerce.order.v1 import order_pb2 as pb
from commerce.payment.v1 import payment_pb2

from tests.errors import error_details
from tests.order.conftest import Shop


async def confirmed(shop: Shop, *, price: int = 1000, quantity: int = 3, stock: int = 10,
                    who: str = "user-alice") -> tuple[pb.Order, str]:
    product = await shop.product(price=price, stock=stock)
    await shop.add(shop.customer(who), product, quantity)
    return await shop.place(shop.customer(who)), product


async def test_cancelling_a_confirmed_order_refunds_it_in_full_and_restocks(shop: Shop) -> None:
    order, product = await confirmed(shop)

    cancelled = (await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id, reason="changed mind"),
                                               metadata=shop.customer())).order

    assert cancelled.status == pb.ORDER_STATUS_CANCELLED and cancelled.cancel_reason == "changed mind"
    [payment] = await shop.payments_of(order.order_id)
    assert payment.status == payment_pb2.PAYMENT_STATUS_REFUNDED
    assert payment.refunded_amount.amount_minor == payment.captured_amount.amount_minor == 3000
    await shop.stock_settles(product, on_hand=10, reserved=0)


async def test_a_refund_beyond_what_was_captured_is_refused(shop: Shop) -> None:
    order, _ = await confirmed(shop)
    await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), metadata=shop.seller)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.payments.RefundPayment(payment_pb2.RefundPaymentRequest(
            payment_id=order.payment_id, amount=money_pb2.Money(currency_code="USD", amount_minor=1),
            request_id="refund-again"), metadata=shop.seller)

    assert error_details(caught.value)[0].reason == "REFUND_EXCEEDS_CAPTURED"
    [payment] = await shop.payments_of(order.order_id)
    assert payment.refunded_amount.amount_minor == 3000


async def test_ship_deliver_return_and_receive_refund_the_returned_lines_and_restock_them(shop: Shop) -> None:
    order, product = await confirmed(shop, price=1000, quantity=3)
    oid = order.order_id

    shipped = (await shop.orders.MarkOrderShipped(pb.MarkOrderShippedRequest(
        order_id=oid, carrier="UPS", tracking_number="1Z999"), metadata=shop.seller)).order
    delivered = (await shop.orders.MarkOrderDelivered(pb.MarkOrderDeliveredRequest(order_id=oid),
                                                      metadata=shop.seller)).order
    requested = (await shop.orders.RequestReturn(pb.RequestReturnRequest(
        order_id=oid, reason="too small", lines=[pb.ReturnLine(product_id=product, quantity=2)]),
        metadata=shop.customer())).order
    received = (await shop.orders.ReceiveReturn(pb.ReceiveReturnRequest(order_id=oid), metadata=shop.seller)).order

    assert shipped.status == pb.ORDER_STATUS_SHIPPED and shipped.shipment.carrier == "UPS"
    assert delivered.status == pb.ORDER_STATUS_DELIVERED and delivered.shipment.HasField("deliver_time")
    assert requested.status == pb.ORDER_STATUS_RETURN_REQUESTED
    assert requested.return_info.refund_amount.amount_minor == 2000
    assert received.status == pb.ORDER_STATUS_REFUNDED and received.return_info.HasField("receive_time")
    [payment] = await shop.payments_of(oid)
    assert payment.status == payment_pb2.PAYMENT_STATUS_PARTIALLY_REFUNDED
    assert payment.refunded_amount.amount_minor == 2000
    await shop.stock_settles(product, on_hand=10 - 3 + 2, reserved=0)


async def test_moves_the_status_does_not_allow_are_invalid_order_status_and_change_nothing(shop: Shop) -> None:
    order, _ = await confirmed(shop)
    oid = order.order_id

    refused = []
    for call in (shop.orders.MarkOrderDelivered(pb.MarkOrderDeliveredRequest(order_id=oid), metadata=shop.seller),
                 shop.orders.RequestReturn(pb.RequestReturnRequest(order_id=oid, reason="x"),
                                           metadata=shop.customer()),
                 shop.orders.ReceiveReturn(pb.ReceiveReturnRequest(order_id=oid), metadata=shop.seller)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        refused.append((caught.value.code(), error_details(caught.value)[0].reason))

    assert refused == [(grpc.StatusCode.FAILED_PRECONDITION, "INVALID_ORDER_STATUS")] * 3
    assert (await shop.get(oid)).status == pb.ORDER_STATUS_CONFIRMED


async def test_a_shipped_order_cannot_be_cancelled(shop: Shop) -> None:
    order, _ = await confirmed(shop)
    await shop.orders.MarkOrderShipped(pb.MarkOrderShippedRequest(order_id=order.order_id, carrier="DHL",
                                                                  tracking_number="42"), metadata=shop.seller)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), metadata=shop.customer())
    assert error_details(caught.value)[0].reason == "INVALID_ORDER_STATUS"
    [payment] = await shop.payments_of(order.order_id)
    assert payment.refunded_amount.amount_minor == 0


async def test_shipping_and_tax_come_from_the_tenants_rules(shop: Shop) -> None:
    await shop.sql("INSERT INTO \"{schema}\".tenant_rules (kind, country_code, region, shipping_mode, base_minor, "
                   "per_kg_minor, free_threshold_minor) VALUES ('shipping', '', '', 'WEIGHT', 500, 200, 100000)")
    await shop.sql("INSERT INTO \"{schema}\".tenant_rules (kind, country_code, region, rate_bps) VALUES "
                   "('tax', 'US', '', 500), ('tax', 'US', 'CA', 725)")
    product = await shop.product(price=1999, stock=10, weight_grams=1200)
    alice = shop.customer()
    await shop.add(alice, product, 2)  # 2.4 kg: 3 started kilograms

    order = await shop.place(alice, region="CA")

    assert order.subtotal.amount_minor == 3998
    assert order.shipping.amount_minor == 500 + 3 * 200
    # 7.25 % of (3998 + 1100) = 369.605 -> 370 (half up, once per order)
    assert order.tax.amount_minor == 370
    assert order.total.amount_minor == 3998 + 1100 + 370
    [payment] = await shop.payments_of(order.order_id)
    assert payment.captured_amount.amount_minor == order.total.amount_minor


async def test_without_rules_shipping_and_tax_are_zero(shop: Shop) -> None:
    order, _ = await confirmed(shop, price=1234, quantity=1)
    assert (order.shipping.amount_minor, order.tax.amount_minor, order.total.amount_minor) == (0, 0, 1234)


async def test_a_retried_lifecycle_call_with_the_same_request_id_answers_again_without_a_second_change(
        shop: Shop) -> None:
    order, _ = await confirmed(shop)
    ship = pb.MarkOrderShippedRequest(order_id=order.order_id, carrier="UPS", tracking_number="1", request_id="s-1")
    first = (await shop.orders.MarkOrderShipped(ship, metadata=shop.seller)).order
    again = (await shop.orders.MarkOrderShipped(ship, metadata=shop.seller)).order
    assert first.status == again.status == pb.ORDER_STATUS_SHIPPED and first.shipment == again.shipment
    assert [name for name, _ in await shop.events()].count("OrderShipped") == 1


async def test_every_status_change_publishes_its_event_and_checkout_only_its_outcome(shop: Shop) -> None:
    order, _ = await confirmed(shop)
    await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), metadata=shop.customer())
    names = ["OrderConfirmed", "OrderCancelled", "OrderRefunded"]  # no OrderPlaced: nobody consumed it
    snake = ["order_confirmed", "order_cancelled", "order_refunded"]
    assert await shop.events() == [(n, f"commerce.order.v1.{s}.{shop.tenant}") for n, s in zip(names, snake,
                                                                                                 strict=True)]
