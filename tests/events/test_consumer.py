"""Durable consumers: each event applied once (inbox in the effect's transaction),
bounded redelivery, then the dead-letter subject. Real PostgreSQL and JetStream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf.message import Message
from nats.aio.msg import Msg

from services.devmesh.nats import Nats
from services.runtime.db import Database, schema_for
from services.runtime.events import naming
from services.runtime.events.consumer import DLQ_REASON, EventConsumer
from services.runtime.events.outbox import emit
from services.runtime.events.relay import OutboxRelay
from services.runtime.events.schema import inbox
from services.runtime.settings import Settings
from services.runtime.sql import Session
from tests.events.harness import connect, eventually, order_confirmed, provisioned, read_all, record_effect, scalar

EFFECTS = sa.Table("effects", sa.MetaData(), sa.Column("event_id", sa.Text, primary_key=True),
                   sa.Column("consumer", sa.Text))
Handler = Callable[[Session, Message, str], Awaitable[None]]


def durable() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def recording(calls: list[str], fail: Callable[[str], bool] = lambda _order: False) -> Handler:
    async def handle(session: Session, event: Message, tenant_id: str) -> None:
        order_id = event.order.order_id  # type: ignore[attr-defined]
        calls.append(order_id)
        if fail(order_id):
            raise RuntimeError(f"cannot handle {order_id}")
        await record_effect(session, event.metadata.event_id, order_id)  # type: ignore[attr-defined]
    return handle


@pytest.fixture
async def consumers() -> AsyncIterator[list[EventConsumer]]:
    started: list[EventConsumer] = []
    yield started
    for consumer in started:
        await consumer.stop()


async def effects(db: Database, tenant: str) -> int:
    return int(await scalar(db, tenant, "SELECT count(*) FROM {schema}.effects"))


async def test_each_committed_event_is_applied_once_with_its_inbox_entry(
        db: Database, settings: Settings, relay: OutboxRelay, consumers: list[EventConsumer]) -> None:
    tenant = await provisioned(db)
    calls: list[str] = []
    name = durable()
    consumer = EventConsumer(db, settings, durable=name, subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=recording(calls))
    consumers.append(consumer)
    await consumer.start()
    await consumer.wait_subscribed()
    for i in range(5):
        async with db.tenant(tenant) as conn:
            await emit(conn, order_confirmed(f"o{i}"), tenant_id=tenant, aggregate_id=f"o{i}")

    async def applied() -> bool:
        return await effects(db, tenant) == 5
    await eventually(applied)
    assert calls == [f"o{i}" for i in range(5)]  # in the order they were written
    assert await scalar(db, tenant, "SELECT count(*) FROM {schema}.inbox WHERE consumer = :c", c=name) == 5


class LosesFirstAck(EventConsumer):
    """A consumer whose first ack never reaches the server (as if the process died right
    after its commit): the server delivers the message again after ack_wait."""

    lost = 0

    async def _ack(self, msg: Msg) -> None:
        if self.lost == 0:
            self.lost += 1
            return
        await super()._ack(msg)


async def test_an_event_delivered_again_after_a_lost_ack_is_not_applied_twice(
        db: Database, settings: Settings, relay: OutboxRelay, consumers: list[EventConsumer]) -> None:
    tenant = await provisioned(db)
    calls: list[str] = []
    consumer = LosesFirstAck(db, settings, durable=durable(), subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=recording(calls), ack_wait=1.0)
    consumers.append(consumer)
    await consumer.start()
    await consumer.wait_subscribed()
    async with db.tenant(tenant) as conn:
        await emit(conn, order_confirmed("once"), tenant_id=tenant, aggregate_id="once")
    js = await consumer.nats.wait_ready()

    async def redelivered_and_acked() -> bool:
        info = await js.consumer_info(naming.STREAM, consumer.durable)
        # One message, delivered twice (consumer sequence 2), and now acknowledged.
        return bool(info.delivered.consumer_seq == 2 and info.ack_floor.consumer_seq == 2)
    await eventually(redelivered_and_acked, within=10)
    assert calls == ["once"]
    assert await effects(db, tenant) == 1


async def test_the_same_event_published_twice_is_applied_once(
        db: Database, settings: Settings, relay: OutboxRelay, consumers: list[EventConsumer],
        nats_server: Nats) -> None:
    tenant = await provisioned(db)
    calls: list[str] = []
    consumer = EventConsumer(db, settings, durable=durable(), subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=recording(calls))
    consumers.append(consumer)
    await consumer.start()
    await consumer.wait_subscribed()
    async with db.tenant(tenant) as conn:
        await emit(conn, order_confirmed("dup"), tenant_id=tenant, aggregate_id="dup")
    await eventually(lambda: _effects_are(db, tenant, 1))
    # A copy published again later (past the stream's duplicate window: another Nats-Msg-Id).
    nc = await connect(nats_server.url)
    try:
        [original] = await read_all(nc, naming.STREAM, f"commerce.*.v1.*.{tenant}")
        headers = {**(original.headers or {}), naming.MSG_ID: "republished"}
        await nc.jetstream().publish(original.subject, original.data, headers=headers)
    finally:
        await nc.close()
    js = await consumer.nats.wait_ready()

    async def both_acked() -> bool:
        info = await js.consumer_info(naming.STREAM, consumer.durable)
        return bool(info.delivered.consumer_seq == 2 and info.ack_floor.consumer_seq == 2)
    await eventually(both_acked)
    assert calls == ["dup"] and await effects(db, tenant) == 1


async def _effects_are(db: Database, tenant: str, n: int) -> bool:
    return await effects(db, tenant) == n


async def test_an_event_that_keeps_failing_goes_to_the_dead_letter_subject_after_max_deliver(
        db: Database, settings: Settings, relay: OutboxRelay, consumers: list[EventConsumer],
        nats_server: Nats) -> None:
    tenant = await provisioned(db)
    calls: list[str] = []
    consumer = EventConsumer(db, settings, durable=durable(), subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=recording(calls, fail=lambda order: order == "poison"),
                             max_deliver=3, nak_base_seconds=0.05)
    consumers.append(consumer)
    await consumer.start()
    await consumer.wait_subscribed()
    async with db.tenant(tenant) as conn:
        poison = await emit(conn, order_confirmed("poison"), tenant_id=tenant, aggregate_id="poison")
    async with db.tenant(tenant) as conn:
        await emit(conn, order_confirmed("fine"), tenant_id=tenant, aggregate_id="fine")

    nc = await connect(nats_server.url)
    try:
        subject = f"dlq.commerce.order.v1.order_confirmed.{tenant}"

        async def dead_lettered() -> bool:
            return len(await read_all(nc, naming.DLQ_STREAM, subject, settle=0.1)) == 1
        await eventually(dead_lettered)
        [dead] = await read_all(nc, naming.DLQ_STREAM, subject)
    finally:
        await nc.close()
    headers = dead.headers or {}
    assert headers[naming.EVENT_TYPE] == "commerce.order.v1.OrderConfirmed" and headers[naming.TENANT] == tenant
    assert "cannot handle poison" in headers[DLQ_REASON]
    assert order_confirmed().FromString(dead.data).metadata.event_id == poison
    assert calls.count("poison") == 3 and calls.count("fine") == 1
    assert await effects(db, tenant) == 1  # the poison event changed nothing
    assert await scalar(db, tenant, "SELECT count(*) FROM {schema}.inbox WHERE event_id = :e", e=poison) == 0


@pytest.mark.parametrize("case", ["unknown type", "undecodable", "bad tenant"])
async def test_an_event_that_can_never_be_applied_goes_to_the_dead_letter_subject_at_once(
        db: Database, settings: Settings, consumers: list[EventConsumer], nats_server: Nats, case: str) -> None:
    tenant = await provisioned(db)
    calls: list[str] = []
    consumer = EventConsumer(db, settings, durable=durable(), subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=recording(calls))
    consumers.append(consumer)
    await consumer.start()
    await consumer.wait_subscribed()
    # A subject no mesh worker consumes: the session's e2e mesh (cart, notifications) shares this NATS
    # and would dead-letter the poison event too.
    subject = f"commerce.order.v1.order_delivered.{tenant}"
    payload, event_type, header_tenant = {
        "unknown type": (order_confirmed().SerializeToString(), "commerce.order.v1.NoSuchEvent", tenant),
        "undecodable": (b"\xff\xffnot protobuf", "commerce.order.v1.OrderConfirmed", tenant),
        "bad tenant": (order_confirmed().SerializeToString(), "commerce.order.v1.OrderConfirmed", "Bad Tenant!"),
    }[case]
    nc = await connect(nats_server.url)
    try:
        await nc.jetstream().publish(subject, payload, headers={
            naming.MSG_ID: uuid.uuid4().hex, naming.EVENT_TYPE: event_type, naming.TENANT: header_tenant})

        async def dead_lettered() -> bool:
            return len(await read_all(nc, naming.DLQ_STREAM, "dlq." + subject, settle=0.1)) == 1
        await eventually(dead_lettered, within=5)
        [dead] = await read_all(nc, naming.DLQ_STREAM, "dlq." + subject)
    finally:
        await nc.close()
    assert calls == []
    assert (dead.headers or {})[naming.EVENT_TYPE] == event_type


async def test_inbox_entries_older_than_the_stream_keeps_events_are_forgotten(
        db: Database, settings: Settings, consumers: list[EventConsumer]) -> None:
    tenant = await provisioned(db)
    name = durable()
    old, now = datetime.now(UTC) - timedelta(days=30), datetime.now(UTC)
    async with db.tenant(tenant) as conn:
        await conn.execute(inbox.insert(), [
            *({"consumer": name, "event_id": f"ancient-{n}", "processed_time": old} for n in range(23)),
            {"consumer": name, "event_id": "recent", "processed_time": now},
            {"consumer": "someone-else", "event_id": "ancient", "processed_time": old},
        ])
        await conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a few rows: the planner would scan
        plan = "\n".join(r[0] for r in await conn.execute(sa.text(
            f"EXPLAIN SELECT event_id FROM \"{schema_for(tenant)}\".inbox WHERE consumer = 'c' "
            "AND processed_time < now()")))
        assert "inbox_consumer_processed" in plan  # the age index is there, and serves the cleanup's query
    consumer = EventConsumer(db, settings, durable=name, subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=recording([]), inbox_retention_seconds=86400, cleanup_every_seconds=0.1,
                             forget_batch=5)  # 23 old entries: five batches
    consumers.append(consumer)
    await consumer.start()

    async def forgotten() -> bool:
        return int(await scalar(db, tenant, "SELECT count(*) FROM {schema}.inbox WHERE consumer = :c", c=name)) == 1
    db.used_at.clear()
    await eventually(forgotten)
    assert await scalar(db, tenant, "SELECT event_id FROM {schema}.inbox WHERE consumer = :c", c=name) == "recent"
    assert schema_for(tenant) not in db.used_at  # a chore, not a use (busy.py would look there for work)
    assert await scalar(db, tenant, "SELECT count(*) FROM {schema}.inbox WHERE consumer = 'someone-else'") == 1


async def _waiting(db: Database, tenant: str, count: int) -> None:
    """``count`` events written before the consumer exists: it finds them waiting, together."""
    for i in range(count):
        async with db.tenant(tenant) as conn:
            await emit(conn, order_confirmed(f"w{i}"), tenant_id=tenant, aggregate_id=f"w{i}")


async def test_events_waiting_together_are_applied_in_one_transaction(
        db: Database, settings: Settings, relay: OutboxRelay, consumers: list[EventConsumer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = await provisioned(db)
    await _waiting(db, tenant, 12)
    transactions: list[str] = []
    real = db.transaction

    def counted(tenant_id: str) -> Any:
        transactions.append(tenant_id)
        return real(tenant_id)

    monkeypatch.setattr(db, "transaction", counted)
    calls: list[str] = []
    consumer = EventConsumer(db, settings, durable=durable(), subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=recording(calls))
    consumers.append(consumer)
    await consumer.start()

    async def applied() -> bool:
        return await effects(db, tenant) == 12
    await eventually(applied)
    assert sorted(calls) == sorted(f"w{i}" for i in range(12))
    assert len(transactions) <= 3  # the first pull's one event, then the rest together (not 12)


async def test_when_one_of_events_applied_together_fails_the_others_are_applied_at_once_and_it_alone_again(
        db: Database, settings: Settings, relay: OutboxRelay, consumers: list[EventConsumer]) -> None:
    tenant = await provisioned(db)
    await _waiting(db, tenant, 12)
    calls: list[str] = []
    failures: list[str] = []

    def w7_twice(order_id: str) -> bool:  # fails together with the others, then alone once more
        if order_id == "w7" and len(failures) < 2:
            failures.append(order_id)
            return True
        return False

    consumer = EventConsumer(db, settings, durable=durable(), subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=recording(calls, fail=w7_twice), nak_base_seconds=0.05)
    consumers.append(consumer)
    await consumer.start()

    async def applied() -> bool:
        return await effects(db, tenant) == 12
    await eventually(applied)
    assert calls.count("w7") == 3  # together, alone (failed again: redelivered), then applied
    assert all(calls.count(f"w{i}") <= 2 for i in range(12) if i != 7)
    assert await scalar(db, tenant, "SELECT count(DISTINCT event_id) FROM {schema}.effects") == 12


async def test_events_applied_each_alone_run_at_most_parallel_at_once(
        db: Database, settings: Settings, relay: OutboxRelay, consumers: list[EventConsumer]) -> None:
    tenant = await provisioned(db)
    await _waiting(db, tenant, 9)
    in_flight: list[int] = [0]
    most: list[int] = [0]

    async def slow(session: Session, event: Message, tenant_id: str) -> None:
        in_flight[0] += 1
        most[0] = max(most[0], in_flight[0])
        try:
            await asyncio.sleep(0.1)  # e.g. an SMTP server answering
            await record_effect(session, event.metadata.event_id, "slow")  # type: ignore[attr-defined]
        finally:
            in_flight[0] -= 1

    consumer = EventConsumer(db, settings, durable=durable(), subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=slow, together=False, parallel=4)
    consumers.append(consumer)
    await consumer.start()

    async def applied() -> bool:
        return await effects(db, tenant) == 9
    await eventually(applied)
    assert most[0] == 4  # the 8 waiting after the first: four at a time, never more
