"""Order emails over real SMTP (aiosmtpd), from events published through the outbox
relay on real NATS JetStream, with the worker's inbox on real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import nats
from commerce.common.v1 import money_pb2
from commerce.order.v1 import order_events_pb2, order_pb2
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.notifications.notifier import DURABLE
from services.runtime.events import naming
from services.runtime.events.outbox import emit
from tests.events.harness import eventually, provisioned, read_all
from tests.notifications.conftest import Worker


def eur(minor: int) -> money_pb2.Money:
    return money_pb2.Money(currency_code="EUR", amount_minor=minor)


def an_order(email: str, **fields: object) -> order_pb2.Order:
    return order_pb2.Order(
        order_id=f"ord-{uuid.uuid4().hex[:8]}", email=email,
        lines=[order_pb2.OrderLine(sku="MUG-1", title="Blue mug", quantity=2, unit_price=eur(1250),
                                   line_total=eur(2500))],
        subtotal=eur(2500), shipping=eur(490), tax=eur(0), total=eur(2990), **fields)  # type: ignore[arg-type]


def unique_email() -> str:
    return f"buyer-{uuid.uuid4().hex[:8]}@shop.example"


async def publish(worker: Worker, event: Message, order_id: str) -> str:
    tenant = await provisioned(worker.orders)
    async with worker.orders.tenant(tenant) as conn:
        await emit(conn, event, tenant_id=tenant, aggregate_id=order_id)
    return tenant


async def consumer_caught_up(worker: Worker, deliveries: int) -> bool:
    nc = await nats.connect(worker.nats.url)
    try:
        info = await nc.jetstream().consumer_info(naming.STREAM, DURABLE)
        delivered, acked = info.delivered.consumer_seq, info.ack_floor.consumer_seq
        return bool(delivered >= deliveries and acked == delivered)
    finally:
        await nc.close()


async def test_a_confirmed_order_sends_one_email_to_the_buyer_naming_the_order(worker: Worker) -> None:
    email = unique_email()
    order = an_order(email)
    tenant = await publish(worker, order_events_pb2.OrderConfirmed(order=order), order.order_id)

    async def arrived() -> bool:
        return len(worker.mailbox.messages(to=email)) >= 1
    await eventually(arrived, within=15)
    await asyncio.sleep(0.5)
    [message] = worker.mailbox.messages(to=email)
    assert order.order_id in message["Subject"] and "confirmed" in message["Subject"]
    assert message["From"] == worker.settings.smtp_from
    assert message["X-Commerce-Tenant"] == tenant
    body = message.get_body().get_content()  # type: ignore[union-attr]
    assert order.order_id in body and "2 x Blue mug" in body and "Total: 29.90 EUR" in body


async def test_a_confirmation_delivered_again_sends_no_second_email(worker: Worker) -> None:
    email = unique_email()
    order = an_order(email)
    tenant = await publish(worker, order_events_pb2.OrderConfirmed(order=order), order.order_id)

    async def arrived() -> bool:
        return len(worker.mailbox.messages(to=email)) == 1
    await eventually(arrived, within=15)
    nc = await nats.connect(worker.nats.url)
    try:  # the same event again, as if the relay had published it twice past the duplicate window
        [original] = await read_all(nc, naming.STREAM, f"commerce.order.v1.*.{tenant}")
        ack = await nc.jetstream().publish(original.subject, original.data,
                                           headers={**(original.headers or {}), naming.MSG_ID: uuid.uuid4().hex})
    finally:
        await nc.close()

    async def handled() -> bool:
        return await consumer_caught_up(worker, ack.seq)
    await eventually(handled)
    assert len(worker.mailbox.messages(to=email)) == 1


async def test_cancelled_and_refunded_orders_are_emailed_with_reason_and_amount(worker: Worker) -> None:
    email = unique_email()
    order = an_order(email, cancel_reason="changed my mind")
    tenant = await provisioned(worker.orders)
    async with worker.orders.tenant(tenant) as conn:
        await emit(conn, order_events_pb2.OrderCancelled(order=order, cancelled_by="customer-1"),
                   tenant_id=tenant, aggregate_id=order.order_id)
        await emit(conn, order_events_pb2.OrderRefunded(order=order, payment_id="pay-1", amount=eur(2990)),
                   tenant_id=tenant, aggregate_id=order.order_id)

    async def both() -> bool:
        return len(worker.mailbox.messages(to=email)) == 2
    await eventually(both, within=15)
    subjects = {str(m["Subject"]): m.get_body().get_content() for m in worker.mailbox.messages(to=email)}  # type: ignore[union-attr]
    cancelled = subjects[f"Your order {order.order_id} was cancelled"]
    assert "Reason: changed my mind" in cancelled
    assert f"Refund of 29.90 EUR for your order {order.order_id}" in subjects


async def test_an_email_waits_while_the_mail_server_is_down_and_is_sent_once_it_returns(worker: Worker) -> None:
    await worker.mailbox.stop()
    email = unique_email()
    order = an_order(email)
    try:
        await publish(worker, order_events_pb2.OrderConfirmed(order=order), order.order_id)
        await asyncio.sleep(1.5)  # several attempts fail meanwhile
        assert worker.mailbox.messages(to=email) == []
    finally:
        await worker.mailbox.start()

    async def arrived() -> bool:
        return len(worker.mailbox.messages(to=email)) >= 1
    await eventually(arrived, within=15)
    await asyncio.sleep(0.5)
    assert len(worker.mailbox.messages(to=email)) == 1


async def test_the_worker_reports_serving_while_its_database_answers(worker: Worker) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.notifications.port}") as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_an_order_confirmed_twice_by_mistake_gets_one_confirmation_email(worker: Worker) -> None:
    email = unique_email()
    order = an_order(email)
    tenant = await provisioned(worker.orders)
    for _ in range(2):  # two distinct events (two event ids) about the same order
        async with worker.orders.tenant(tenant) as conn:
            await emit(conn, order_events_pb2.OrderConfirmed(order=order), tenant_id=tenant,
                       aggregate_id=order.order_id)
    nc = await nats.connect(worker.nats.url)
    try:
        async def both_published() -> bool:
            return len(await read_all(nc, naming.STREAM, f"commerce.order.v1.*.{tenant}", settle=0.1)) == 2
        await eventually(both_published)
        last = (await nc.jetstream().stream_info(naming.STREAM)).state.last_seq
    finally:
        await nc.close()

    async def handled() -> bool:
        return await consumer_caught_up(worker, last)
    await eventually(handled, within=15)
    assert len(worker.mailbox.messages(to=email)) == 1


async def test_emails_share_a_few_smtp_sessions_and_each_is_sent_once(worker: Worker) -> None:
    assert worker.mailbox.server is not None
    opened = worker.mailbox.server.sessions_opened
    tenant = await provisioned(worker.orders)
    emails = [unique_email() for _ in range(20)]
    for email in emails:
        order = an_order(email)
        async with worker.orders.tenant(tenant) as conn:
            await emit(conn, order_events_pb2.OrderConfirmed(order=order), tenant_id=tenant,
                       aggregate_id=order.order_id)

    async def all_sent() -> bool:
        return all(len(worker.mailbox.messages(to=email)) == 1 for email in emails)
    await eventually(all_sent, within=15)
    await asyncio.sleep(0.3)
    assert [len(worker.mailbox.messages(to=email)) for email in emails] == [1] * 20
    # the worker's sessions at most for twenty emails (none when they were open already)
    assert worker.mailbox.server.sessions_opened - opened <= worker.settings.smtp_sessions


async def test_an_email_with_accents_in_the_address_subject_and_lines_arrives_intact(worker: Worker) -> None:
    email = f"café-{uuid.uuid4().hex[:6]}@shop.example"  # sent with SMTPUTF8
    order = an_order(email)
    order.lines[0].title = "Tasse à café"
    await publish(worker, order_events_pb2.OrderRefunded(order=order, payment_id="pay-1", amount=eur(1250)),
                  order.order_id)

    async def arrived() -> bool:
        return len(worker.mailbox.messages(to=email)) == 1
    await eventually(arrived, within=15)
    [message] = worker.mailbox.messages(to=email)
    assert str(message["Subject"]) == f"Refund of 12.50 EUR for your order {order.order_id}"
    body = message.get_body().get_content()  # type: ignore[union-attr]
    assert "2 x Tasse à café  25.00 EUR" in body
