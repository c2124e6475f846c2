"""NATS stopped while a service keeps committing: once NATS returns every event is
published and consumed exactly once (relay and consumer both ride out the outage)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from google.protobuf.message import Message

from services.devmesh.nats import Nats
from services.runtime.events import naming
from services.runtime.events.consumer import EventConsumer
from services.runtime.events.outbox import emit
from services.runtime.events.relay import OutboxRelay
from services.runtime.settings import Settings
from services.runtime.sql import Session
from tests.conftest import free_port
from tests.events.harness import (
    connect,
    eventually,
    open_db,
    order_confirmed,
    provisioned,
    read_all,
    record_effect,
    scalar,
)

EFFECTS = sa.Table("effects", sa.MetaData(), sa.Column("event_id", sa.Text, primary_key=True),
                   sa.Column("consumer", sa.Text))


async def test_events_committed_while_nats_is_down_are_each_consumed_exactly_once(
        settings: Settings, tmp_path: Path) -> None:
    own = Nats(tmp_path / "nats", free_port())
    own.start()
    db = await open_db(settings, "events_outage")
    tenant = await provisioned(db)
    applied: Counter[str] = Counter()

    async def handle(session: Session, event: Message, tenant_id: str) -> None:
        applied[event.order.order_id] += 1  # type: ignore[attr-defined]
        await record_effect(session, event.metadata.event_id, "outage")  # type: ignore[attr-defined]

    relay = OutboxRelay(db, settings, nats_url=own.url, publish_timeout=0.5)
    consumer = EventConsumer(db, settings, durable="outage", subjects=[f"commerce.order.v1.*.{tenant}"],
                             handler=handle, nats_url=own.url)
    await relay.start()
    await consumer.start()
    try:
        await consumer.wait_subscribed()

        async def write(prefix: str, n: int) -> None:
            for i in range(n):
                async with db.tenant(tenant) as conn:
                    await emit(conn, order_confirmed(f"{prefix}-{i}"), tenant_id=tenant, aggregate_id=f"{prefix}-{i}")

        await write("before", 5)
        writer = asyncio.create_task(write("during", 30))
        await asyncio.sleep(0.05)
        own.stop()  # mid-stream: some events are in flight, the rest wait in the outbox
        await writer
        await asyncio.sleep(1.0)
        own.start()

        async def all_applied() -> bool:
            return int(await scalar(db, tenant, "SELECT count(*) FROM {schema}.effects")) == 35
        await eventually(all_applied, within=30)
        await asyncio.sleep(1.0)  # nothing arrives a second time
        assert sorted(applied) == sorted([f"before-{i}" for i in range(5)] + [f"during-{i}" for i in range(30)])
        assert set(applied.values()) == {1}
        assert await scalar(db, tenant, "SELECT count(*) FROM {schema}.outbox WHERE state = 'pending'") == 0
        nc = await connect(own.url)
        try:
            stored = await read_all(nc, naming.STREAM, f"commerce.*.v1.*.{tenant}")
        finally:
            await nc.close()
        assert len(stored) == 35  # published once each (duplicates dropped by Nats-Msg-Id)
    finally:
        await consumer.stop()
        await relay.stop()
        own.stop()
        await db.dispose()
