"""The checkout saga end to end: confirmed orders, totals, failures and their compensations."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as cpb
from commerce.order.v1 import order_pb2 as pb
from commerce.payment.v1 import payment_pb2

from services.order import orders as orders_module
from services.order.domain import validation
from services.order.domain.order import Address
from services.order.domain.saga import Step
from services.order.domain.status import OrderStatus
from services.order.orders import Orders
from services.order.peers import Peers
from services.order.recovery import RecoveryWorker
from services.order.saga import AfterStep, SagaRunner
from services.runtime.context import Caller
from tests.conftest import free_port
from tests.errors import error_details
from tests.order.conftest import DECLINED, INSUFFICIENT, OK, Shop


async def test_a_placed_order_is_confirmed_charged_once_and_its_stock_sold(shop: Shop) -> None:
    product = await shop.product(price=1250, stock=5)
    alice = shop.customer()
    await shop.add(alice, product, 2)

    order = await shop.place(alice)

    assert order.status == pb.ORDER_STATUS_CONFIRMED
    assert order.subtotal.amount_minor == 2500 and order.total.amount_minor == 2500
    assert [(line.product_id, line.quantity, line.unit_price.amount_minor) for line in order.lines] == [
        (product, 2, 1250)]
    await shop.stock_settles(product, on_hand=3, reserved=0)  # the catalog commits on OrderConfirmed
    payments = await shop.payments_of(order.order_id)
    assert len(payments) == 1 and payments[0].status == payment_pb2.PAYMENT_STATUS_CAPTURED
    assert payments[0].captured_amount.amount_minor == 2500 and order.payment_id == payments[0].payment_id


async def test_an_empty_cart_is_cart_empty_and_no_order(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.place(shop.customer("user-empty"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(caught.value)[0].reason == "CART_EMPTY"
    assert await shop.count("orders") == 0


@pytest.mark.parametrize(("token", "reason"), [(DECLINED, "PAYMENT_DECLINED"), (INSUFFICIENT, "INSUFFICIENT_FUNDS")])
async def test_a_declined_payment_fails_the_order_releases_stock_and_captures_nothing(
        shop: Shop, token: str, reason: str) -> None:
    product = await shop.product(stock=3)
    alice = shop.customer()
    await shop.add(alice, product, 2)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.place(alice, token=token)

    info = error_details(caught.value)[0]
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and info.reason == reason
    order = await shop.get(info.metadata["order_id"])
    assert order.status == pb.ORDER_STATUS_FAILED and order.failure_reason == reason
    stock = await shop.stock(product)
    assert (stock.on_hand, stock.reserved) == (3, 0)
    assert all(p.captured_amount.amount_minor == 0 for p in await shop.payments_of(order.order_id))


async def test_out_of_stock_fails_the_order_with_reason_out_of_stock(shop: Shop) -> None:
    product = await shop.product(stock=1)
    alice = shop.customer()
    await shop.add(alice, product, 1)
    await shop.catalog.SetStock(cpb.SetStockRequest(product_id=product, on_hand=0), metadata=shop.seller)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.place(alice)

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(caught.value)[0].reason == "OUT_OF_STOCK"
    assert await shop.payments_of(error_details(caught.value)[0].metadata["order_id"]) == []



def direct_checkout(shop: Shop, sub: str, after_step: AfterStep | None = None,
                    peers: Peers | None = None) -> tuple[Orders, Caller, validation.Checkout]:
    """The order service's use cases with a runner whose ``after_step`` hook acts between steps."""
    mesh = shop.mesh
    peers = peers or mesh.peers
    orders = Orders(mesh.order_db, peers, SagaRunner(mesh.order_db, peers, after_step=after_step,
                                                     max_attempts=2, retry_seconds=0.05), mesh.parts.feed)
    caller = Caller(sub, shop.tenant, frozenset({"customer"}),
                    mesh.keys.mint(tenant=shop.tenant, roles=["customer"], sub=sub))
    checkout = validation.checkout(f"{sub}-1", Address("A", "1 Main St", "", "Town", "", "", "US"), OK, "a@b.co")
    return orders, caller, checkout


async def test_a_checkout_slower_than_the_settle_limit_is_answered_in_progress_at_that_limit_not_twice_it(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    settle, slow_step = 0.5, 2.0
    monkeypatch.setattr(orders_module, "SETTLE_SECONDS", settle)

    async def slow(_order_id: str, step: Step) -> None:
        if step is Step.RESERVE:
            await asyncio.sleep(slow_step)

    orders, caller, checkout = direct_checkout(shop, "user-slow", slow)
    product = await shop.product(stock=5)
    await shop.add(shop.customer(caller.subject), product, 1)
    loop = asyncio.get_running_loop()
    started = loop.time()

    order = await orders.place(caller, shop.tenant, checkout)

    assert loop.time() - started < settle + 0.4  # one limit for the whole call (it was waited twice)
    assert order.status is OrderStatus.PENDING
    for _ in range(100):  # the saga was not stopped: it finishes on its own
        if (await shop.get(order.order_id)).status == pb.ORDER_STATUS_CONFIRMED:
            break
        await asyncio.sleep(0.05)
    assert (await shop.get(order.order_id)).status == pb.ORDER_STATUS_CONFIRMED


async def test_a_reservation_lost_before_the_confirmation_is_taken_again_while_the_units_are_there(
        shop: Shop) -> None:
    async def reservation_lost(order_id: str, step: Step) -> None:
        if step is Step.CAPTURE:  # e.g. expired by the catalog's sweeper while the payment was slow
            await shop.mesh.peers.release(shop.tenant, order_id)

    orders, caller, checkout = direct_checkout(shop, "user-lost", reservation_lost)
    product = await shop.product(price=800, stock=4)
    await shop.add(shop.customer(caller.subject), product, 2)

    order = await orders.place(caller, shop.tenant, checkout)

    assert order.status is OrderStatus.CONFIRMED
    await shop.stock_settles(product, on_hand=2, reserved=0)  # the catalog took the units again
    payments = await shop.payments_of(order.order_id)
    assert [(p.status, p.captured_amount.amount_minor) for p in payments] == [
        (payment_pb2.PAYMENT_STATUS_CAPTURED, 1600)]
    assert (await shop.get(order.order_id)).status == pb.ORDER_STATUS_CONFIRMED


async def test_a_confirmed_order_whose_units_were_sold_meanwhile_is_cancelled_and_refunded_in_full(
        shop: Shop) -> None:
    product = await shop.product(price=800, stock=4)

    async def units_gone(order_id: str, step: Step) -> None:
        if step is Step.CAPTURE:  # the reservation lapsed, and the units went to someone else
            await shop.mesh.peers.release(shop.tenant, order_id)
            await shop.catalog.SetStock(cpb.SetStockRequest(product_id=product, on_hand=1), metadata=shop.seller)

    orders, caller, checkout = direct_checkout(shop, "user-short", units_gone)
    await shop.add(shop.customer(caller.subject), product, 2)

    order = await orders.place(caller, shop.tenant, checkout)
    assert order.status is OrderStatus.CONFIRMED  # the shortfall is only known to the catalog, after

    recovery = RecoveryWorker(shop.mesh.order_db, shop.mesh.parts.runner, idle_seconds=0)
    for _ in range(100):  # StockShortfall reaches the order service, which hands the order to compensation
        await recovery.recover_once()
        if (await shop.get(order.order_id)).status == pb.ORDER_STATUS_CANCELLED:
            break
        await asyncio.sleep(0.1)
    cancelled = await shop.get(order.order_id)
    assert cancelled.status == pb.ORDER_STATUS_CANCELLED and cancelled.cancel_reason == "OUT_OF_STOCK"
    payments = await shop.payments_of(order.order_id)
    assert [(p.status, p.captured_amount.amount_minor, p.refunded_amount.amount_minor) for p in payments] == [
        (payment_pb2.PAYMENT_STATUS_REFUNDED, 1600, 1600)]
    await shop.stock_settles(product, on_hand=1, reserved=0)  # nothing was taken, nothing put back
    assert [name for name, _ in await shop.events()] == ["OrderConfirmed", "OrderCancelled", "OrderRefunded"]


async def test_a_checkout_whose_runner_stalled_is_answered_at_once_in_progress_not_after_the_settle_limit(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    settle = 5.0
    monkeypatch.setattr(orders_module, "SETTLE_SECONDS", settle)
    mesh = shop.mesh

    async def service_metadata(tenant: str) -> tuple[tuple[str, str], ...]:
        return (*mesh.keys.metadata(tenant="platform", roles=["service"]), ("x-tenant-id", tenant))

    catalog_down = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")  # nothing listens there
    peers = Peers({"cart": mesh.channels["cart"], "catalog": catalog_down, "payment": mesh.channels["payment"]},
                  service_metadata, 1.0)
    orders, caller, checkout = direct_checkout(shop, "user-stalled", peers=peers)
    product = await shop.product(stock=5)
    await shop.add(shop.customer(caller.subject), product, 1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        order = await orders.place(caller, shop.tenant, checkout)
    finally:
        await catalog_down.close()

    assert loop.time() - started < settle / 2  # the stalled saga is the recovery worker's now
    assert order.status is OrderStatus.PENDING and order.failure_reason == "CHECKOUT_UNAVAILABLE"
    assert await shop.payments_of(order.order_id) == []


async def test_a_free_order_is_confirmed_without_a_payment_and_its_stock_sold(shop: Shop) -> None:
    """A product priced 0 (a free sample) with free shipping: nothing to charge, so no payment
    is asked for (a provider refuses a zero amount) and the order is confirmed all the same."""
    product = await shop.product(price=0, stock=3)
    alice = shop.customer("user-free")
    await shop.add(alice, product, 2)

    order = await shop.place(alice)

    assert order.status == pb.ORDER_STATUS_CONFIRMED and order.total.amount_minor == 0
    assert order.payment_id == "" and await shop.payments_of(order.order_id) == []
    await shop.stock_settles(product, on_hand=1, reserved=0)
    assert [name for name, _ in await shop.events()] == ["OrderConfirmed"]


async def test_a_free_order_can_be_cancelled_and_its_units_come_back(shop: Shop) -> None:
    product = await shop.product(price=0, stock=3)
    alice = shop.customer("user-free-cancel")
    await shop.add(alice, product, 1)
    order = await shop.place(alice)

    cancelled = (await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id),
                                               metadata=alice)).order

    assert cancelled.status == pb.ORDER_STATUS_CANCELLED
    await shop.stock_settles(product, on_hand=3, reserved=0)
    assert [name for name, _ in await shop.events()] == ["OrderConfirmed", "OrderCancelled"]
