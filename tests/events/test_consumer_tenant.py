"""A consumer applies an event only in the tenant its subject, its Commerce-Tenant header
and its metadata.tenant_id all name; an event whose tenants disagree is applied in no
tenant and goes to the dead-letter subject at once. Real PostgreSQL and JetStream."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from commerce.common.v1 import event_pb2
from google.protobuf.message import Message

from services.devmesh.nats import Nats
from services.runtime.db import Database
from services.runtime.events import naming
from services.runtime.events.consumer import DLQ_REASON, EventConsumer
from services.runtime.settings import Settings
from services.runtime.sql import Session
from tests.events.harness import connect, eventually, order_confirmed, provisioned, read_all, record_effect, scalar

EFFECTS = sa.Table("effects", sa.MetaData(), sa.Column("event_id", sa.Text, primary_key=True),
                   sa.Column("consumer", sa.Text))
# A subject no mesh worker consumes (the session's e2e mesh shares this NATS).
EVENT = "order_delivered"


@pytest.fixture
async def started() -> AsyncIterator[list[EventConsumer]]:
    consumers: list[EventConsumer] = []
    yield consumers
    for consumer in consumers:
        await consumer.stop()


async def effects(db: Database, tenant: str) -> int:
    return int(await scalar(db, tenant, "SELECT count(*) FROM {schema}.effects"))


# Which tenant (the event's own "b", or the other one "a") each place names; None: left out.
CASES = {
    "all agree": ("b", "b", "b"),
    "header names another tenant": ("b", "a", "b"),
    "metadata names another tenant": ("b", "b", "a"),
    "no header, metadata names another tenant": ("b", None, "a"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_event_whose_subject_header_and_metadata_name_different_tenants_is_applied_in_none(
        db: Database, settings: Settings, started: list[EventConsumer], nats_server: Nats, case: str) -> None:
    tenants = {"a": await provisioned(db), "b": await provisioned(db)}
    subject_tenant, header_tenant, meta_tenant = (tenants[k] if k else None for k in CASES[case])
    applied: list[str] = []

    async def handler(session: Session, event: Message, tenant_id: str) -> None:
        applied.append(tenant_id)
        await record_effect(session, event.metadata.event_id, tenant_id)  # type: ignore[attr-defined]

    consumer = EventConsumer(db, settings, durable=f"test-{uuid.uuid4().hex[:8]}",
                             subjects=[f"commerce.order.v1.{EVENT}.{t}" for t in tenants.values()], handler=handler)
    started.append(consumer)
    await consumer.start()
    await consumer.wait_subscribed()
    event = order_confirmed()
    event.metadata.CopyFrom(event_pb2.EventMetadata(event_id=str(uuid.uuid4()),
                                                    event_type="commerce.order.v1.OrderConfirmed",
                                                    tenant_id=meta_tenant or ""))
    headers = {naming.MSG_ID: event.metadata.event_id, naming.EVENT_TYPE: "commerce.order.v1.OrderConfirmed"}
    if header_tenant:
        headers[naming.TENANT] = header_tenant
    subject = f"commerce.order.v1.{EVENT}.{subject_tenant}"
    nc = await connect(nats_server.url)
    try:
        await nc.jetstream().publish(subject, event.SerializeToString(), headers=headers)
        if case == "all agree":
            async def done() -> bool:
                return await effects(db, tenants["b"]) == 1
            await eventually(done, within=5)
            assert applied == [tenants["b"]] and await effects(db, tenants["a"]) == 0
            return

        async def handled() -> bool:  # applied somewhere, or dead-lettered
            return bool(applied) or len(await read_all(nc, naming.DLQ_STREAM, "dlq." + subject, settle=0.1)) == 1
        await eventually(handled, within=5)
        assert applied == [], f"applied in {applied} ({'a' if applied[0] == tenants['a'] else 'b'})"
        [dead] = await read_all(nc, naming.DLQ_STREAM, "dlq." + subject)
    finally:
        await nc.close()
    assert await effects(db, tenants["a"]) == 0 and await effects(db, tenants["b"]) == 0
    assert "tenant" in (dead.headers or {})[DLQ_REASON]
