"""A process killed between saga steps: the recovery worker finishes or undoes every
order it left behind (simulated by a runner whose hook raises after a given step)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from commerce.order.v1 import order_pb2 as pb
from commerce.payment.v1 import payment_pb2
from sqlalchemy import text

from services.order.domain import validation
from services.order.domain.order import Address
from services.order.domain.saga import Step
from services.order.orders import Orders
from services.order.recovery import RecoveryWorker
from services.order.saga import SagaRunner
from services.order.store import checkout as checkout_store
from services.runtime.context import Caller
from services.runtime.db import schema_for
from services.runtime.protos import money_pb
from services.runtime.sql import Session
from tests.errors import error_details
from tests.order.conftest import OK, Mesh, Shop

CRASH_LEASE_SECONDS = 0.2


class Crash(Exception):
    pass


def crashing_orders(mesh: Mesh, after: Step) -> Orders:
    async def hook(_order_id: str, step: Step) -> None:
        if step is after:
            raise Crash(f"killed after {step}")

    runner = SagaRunner(mesh.order_db, mesh.peers, lease_seconds=CRASH_LEASE_SECONDS, after_step=hook)
    return Orders(mesh.order_db, mesh.peers, runner)


async def crash_checkout(shop: Shop, after: Step, product: str) -> str:
    """Places an order for 2 units with a process that dies after ``after``; the order id."""
    sub = f"user-crash-{after.value.lower()}"
    await shop.add(shop.customer(sub), product, 2)
    caller = Caller(sub, shop.tenant, frozenset({"customer"}),
                    shop.mesh.keys.mint(tenant=shop.tenant, roles=["customer"], sub=sub))
    checkout = validation.checkout("crash-1", Address("A", "1 Main St", "", "Town", "", "", "US"), OK, "a@b.co")
    with pytest.raises(Crash):
        await crashing_orders(shop.mesh, after).place(caller, shop.tenant, checkout)
    async with shop.mesh.order_db.engine.connect() as conn:
        order_id = await conn.scalar(text(f'SELECT order_id FROM "{schema_for(shop.tenant)}".orders'))
    assert isinstance(order_id, str)
    return order_id


async def recover(mesh: Mesh) -> None:
    await asyncio.sleep(CRASH_LEASE_SECONDS + 0.1)  # the dead process's lease runs out
    await RecoveryWorker(mesh.order_db, mesh.parts.runner, idle_seconds=0).recover_once()


async def test_killed_after_the_payment_was_taken_the_order_is_confirmed_and_charged_once(shop: Shop) -> None:
    product = await shop.product(price=500, stock=5)
    order_id = await crash_checkout(shop, Step.CAPTURE, product)
    assert (await shop.get(order_id)).status == pb.ORDER_STATUS_PENDING  # what the dead process left behind

    await recover(shop.mesh)

    order = await shop.get(order_id)
    assert order.status == pb.ORDER_STATUS_CONFIRMED
    payments = await shop.payments_of(order_id)
    assert [(p.status, p.captured_amount.amount_minor) for p in payments] == [
        (payment_pb2.PAYMENT_STATUS_CAPTURED, 1000)]
    assert order.payment_id == payments[0].payment_id
    await shop.stock_settles(product, on_hand=3, reserved=0)


async def test_killed_after_reserving_before_paying_the_order_is_compensated_and_stock_released(shop: Shop) -> None:
    product = await shop.product(stock=5)
    order_id = await crash_checkout(shop, Step.RESERVE, product)
    assert (await shop.stock(product)).reserved == 2  # what the dead process left behind

    await recover(shop.mesh)

    order = await shop.get(order_id)
    assert order.status == pb.ORDER_STATUS_FAILED and order.failure_reason == "PAYMENT_FAILED"
    stock = await shop.stock(product)
    assert (stock.on_hand, stock.reserved) == (5, 0)
    assert await shop.payments_of(order_id) == []


async def test_killed_while_charging_the_payment_taken_is_found_and_the_order_confirmed(shop: Shop) -> None:
    product = await shop.product(price=300, stock=5)
    order_id = await crash_checkout(shop, Step.RESERVE, product)
    # The charge reached the payment service, but the process died before it heard the answer.
    await shop.mesh.peers.charge(shop.tenant, order_id, money_pb("USD", 600), OK, f"{order_id}:charge")

    await recover(shop.mesh)

    assert (await shop.get(order_id)).status == pb.ORDER_STATUS_CONFIRMED
    payments = await shop.payments_of(order_id)
    assert [(p.status, p.captured_amount.amount_minor) for p in payments] == [
        (payment_pb2.PAYMENT_STATUS_CAPTURED, 600)]
    await shop.stock_settles(product, on_hand=3, reserved=0)


async def test_a_checkout_an_older_version_left_authorized_is_captured_once_and_confirmed(shop: Shop) -> None:
    product = await shop.product(price=300, stock=5)
    order_id = await crash_checkout(shop, Step.RESERVE, product)
    # Older versions authorized, then captured in a step of its own.
    await shop.processing.AuthorizePayment(payment_pb2.AuthorizePaymentRequest(
        request_id=f"{order_id}:authorize", order_id=order_id, amount=money_pb("USD", 600), payment_token=OK),
        metadata=shop.service)

    await recover(shop.mesh)

    assert (await shop.get(order_id)).status == pb.ORDER_STATUS_CONFIRMED
    payments = await shop.payments_of(order_id)
    assert [(p.status, p.captured_amount.amount_minor) for p in payments] == [
        (payment_pb2.PAYMENT_STATUS_CAPTURED, 600)]


async def test_cancelling_a_checkout_its_dead_process_left_mid_way_compensates_it(shop: Shop) -> None:
    product = await shop.product(stock=5)
    order_id = await crash_checkout(shop, Step.RESERVE, product)
    await asyncio.sleep(CRASH_LEASE_SECONDS + 0.1)

    reply = await shop.orders.CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason="too slow"),
                                          metadata=shop.customer("user-crash-reserve"))

    assert reply.order.status == pb.ORDER_STATUS_CANCELLED and reply.order.cancel_reason == "too slow"
    stock = await shop.stock(product)
    assert (stock.on_hand, stock.reserved) == (5, 0)
    assert await shop.payments_of(order_id) == []


async def test_a_retry_waiting_on_a_saga_run_elsewhere_is_woken_by_its_changes_not_by_polling_the_row(
        shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    product = await shop.product(stock=5)
    order_id = await crash_checkout(shop, Step.RESERVE, product)
    reads: list[str] = []
    real_get = checkout_store.get

    async def counted_get(session: Session, oid: str) -> object:
        reads.append(oid)
        return await real_get(session, oid)

    monkeypatch.setattr(checkout_store, "get", counted_get)
    for _ in range(50):  # the order service's change feed is listening
        if shop.mesh.parts.feed.online:
            break
        await asyncio.sleep(0.05)
    retry = asyncio.ensure_future(shop.orders.PlaceOrder(
        pb.PlaceOrderRequest(request_id="crash-1", payment_token=OK, email="a@b.co",
                             shipping_address=pb.Address(recipient="A", line1="1 Main St", city="Town",
                                                         country_code="US")),
        metadata=shop.customer("user-crash-reserve")))
    await asyncio.sleep(0.6)  # nothing changes the order: the retry waits without re-reading it
    assert not retry.done() and reads.count(order_id) <= 2

    await recover(shop.mesh)  # another runner finishes the saga: the waiting retry answers its outcome

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await asyncio.wait_for(retry, 2.0)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(caught.value)[0].metadata["order_id"] == order_id
