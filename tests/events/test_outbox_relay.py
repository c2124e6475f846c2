"""The outbox and its relay against real PostgreSQL and NATS JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.msg import Msg

from services.devmesh.nats import Nats
from services.runtime.db import Database, schema_for
from services.runtime.events import naming
from services.runtime.events.outbox import emit, insert, outbox_row
from services.runtime.events.relay import OutboxRelay
from services.runtime.settings import Settings
from tests.conftest import free_port
from tests.events.harness import connect, eventually, open_db, order_confirmed, provisioned, read_all, scalar


async def pending(db: Database, tenant: str) -> int:
    return int(await scalar(db, tenant, "SELECT count(*) FROM {schema}.outbox WHERE state = 'pending'"))


async def published(nats_url: str, tenant: str) -> list[Msg]:
    """Every event of the tenant JetStream holds, in order."""
    nc = await connect(nats_url)
    try:
        return await read_all(nc, naming.STREAM, f"commerce.*.v1.*.{tenant}")
    finally:
        await nc.close()


async def outbox_emptied(db: Database, tenant: str, within: float) -> None:
    """Until every outbox row of the tenant was published (and so deleted)."""
    async def gone() -> bool:
        return int(await scalar(db, tenant, "SELECT count(*) FROM {schema}.outbox")) == 0
    await eventually(gone, within=within)


@dataclass
class OwnRelay:
    db: Database
    nats: Nats
    relay: OutboxRelay
    tenant: str


@asynccontextmanager
async def own_relay(settings: Settings, tmp_path: Path, *, nats_up: bool = True,
                    **options: Any) -> AsyncIterator[OwnRelay]:
    """A relay (not started) with a NATS server of its own (started unless ``nats_up`` is
    False) over a database no relay of this module's fixture reads, and a provisioned tenant."""
    db = await open_db(settings, "events_own_nats")
    own = Nats(tmp_path / "nats", free_port())
    if nats_up:
        own.start()
    relay = OutboxRelay(db, settings, nats_url=own.url, **options)
    try:
        yield OwnRelay(db, own, relay, await provisioned(db))
    finally:
        await relay.stop()
        own.stop()
        await db.dispose()


async def test_committed_events_are_published_once_with_their_subject_and_headers(
        db: Database, relay: OutboxRelay, nats_server: Nats) -> None:
    tenant = await provisioned(db)
    async with db.tenant(tenant) as conn:
        first = await emit(conn, order_confirmed("ord-1"), tenant_id=tenant, aggregate_id="ord-1")
        second = await emit(conn, order_confirmed("ord-2"), tenant_id=tenant, aggregate_id="ord-2")

    async def all_sent() -> bool:
        return await pending(db, tenant) == 0
    await eventually(all_sent)

    messages = await published(nats_server.url, tenant)
    assert [m.subject for m in messages] == [f"commerce.order.v1.order_confirmed.{tenant}"] * 2
    assert [m.headers[naming.MSG_ID] for m in messages if m.headers] == [first, second]
    headers = messages[0].headers or {}
    assert headers[naming.EVENT_TYPE] == "commerce.order.v1.OrderConfirmed"
    assert headers[naming.TENANT] == tenant
    assert headers[naming.TRACEPARENT].startswith("00-") and len(headers[naming.TRACEPARENT]) == 55
    event = order_confirmed()
    event.ParseFromString(messages[0].data)
    assert (event.metadata.event_id, event.metadata.tenant_id, event.metadata.aggregate_id) == (first, tenant, "ord-1")
    assert event.metadata.event_type == "commerce.order.v1.OrderConfirmed"
    assert event.metadata.occur_time.seconds > 0 and event.order.order_id == "ord-1"


async def test_an_event_emitted_in_a_rolled_back_transaction_is_never_published(
        db: Database, relay: OutboxRelay, nats_server: Nats) -> None:
    tenant = await provisioned(db)
    with pytest.raises(RuntimeError):
        async with db.tenant(tenant) as conn:
            await emit(conn, order_confirmed("ord-lost"), tenant_id=tenant, aggregate_id="ord-lost")
            raise RuntimeError("the state change failed")
    async with db.tenant(tenant) as conn:
        await emit(conn, order_confirmed("ord-kept"), tenant_id=tenant, aggregate_id="ord-kept")

    async def sent() -> bool:
        return await pending(db, tenant) == 0
    await eventually(sent)
    messages = await published(nats_server.url, tenant)
    assert [order_confirmed().FromString(m.data).order.order_id for m in messages] == ["ord-kept"]
    assert await scalar(db, tenant, "SELECT count(*) FROM {schema}.outbox") == 0  # published: deleted


async def test_committed_rows_are_handed_to_the_relay_once_on_either_path_and_rolled_back_ones_never(
        settings: Settings) -> None:
    db = await open_db(settings, "events_handoff")
    tenant = await provisioned(db)
    handed: list[tuple[str, list[str]]] = []
    db.hand_outbox_to(lambda schema, rows: handed.append((schema, [r.event_id for r in rows])))
    try:
        with pytest.raises(RuntimeError):
            async with db.tenant(tenant) as conn:
                await emit(conn, order_confirmed("lost"), tenant_id=tenant, aggregate_id="lost")
                raise RuntimeError("rolled back")
        with pytest.raises(RuntimeError):
            async with db.transaction(tenant) as session:
                await insert(session, outbox_row(order_confirmed("lost"), tenant_id=tenant, aggregate_id="lost"))
                raise RuntimeError("rolled back")
        assert handed == []
        async with db.tenant(tenant) as conn:  # cold path (SQLAlchemy)
            a = await emit(conn, order_confirmed("a"), tenant_id=tenant, aggregate_id="a")
            b = await emit(conn, order_confirmed("b"), tenant_id=tenant, aggregate_id="b")
        row = outbox_row(order_confirmed("c"), tenant_id=tenant, aggregate_id="c")
        async with db.transaction(tenant) as session:  # hot path (asyncpg)
            await insert(session, row)
        assert handed == [(schema_for(tenant), [a, b]), (schema_for(tenant), [row.event_id])]
        assert await scalar(db, tenant, "SELECT count(*) FROM {schema}.outbox") == 3
    finally:
        await db.dispose()


async def test_handed_off_rows_are_published_at_once_and_deleted(settings: Settings, tmp_path: Path) -> None:
    # The poll would not touch a row younger than a minute: only the hand-off can publish it.
    async with own_relay(settings, tmp_path, min_age_seconds=60) as it:
        db, tenant = it.db, it.tenant
        await it.relay.start()
        await it.relay.nats.wait_ready()
        rows = [outbox_row(order_confirmed(f"fast-{i}"), tenant_id=tenant, aggregate_id=f"fast-{i}")
                for i in range(50)]
        async with db.transaction(tenant) as session:
            for row in rows:
                await insert(session, row)
        await outbox_emptied(db, tenant, within=5)
        messages = await published(it.nats.url, tenant)
        assert [m.headers[naming.MSG_ID] for m in messages if m.headers] == [r.event_id for r in rows]


async def test_rows_nobody_handed_off_are_found_by_the_poll(settings: Settings, tmp_path: Path) -> None:
    """Rows committed by another process (one that died before publishing, or has no relay)."""
    async with own_relay(settings, tmp_path, min_age_seconds=0.2, poll_seconds=0.2) as it:
        db, tenant = it.db, it.tenant
        await it.relay.start()
        await it.relay.nats.wait_ready()
        elsewhere = Database(db.server_url, db.database, 2)  # another process: no relay of its own
        try:
            async with elsewhere.tenant(tenant) as conn:
                event_id = await emit(conn, order_confirmed("orphan"), tenant_id=tenant, aggregate_id="orphan")
        finally:
            await elsewhere.dispose()
        await outbox_emptied(db, tenant, within=10)
        messages = await published(it.nats.url, tenant)
        assert [m.headers[naming.MSG_ID] for m in messages if m.headers] == [event_id]


async def test_events_written_while_nats_is_down_are_all_published_once_it_returns(
        settings: Settings, tmp_path: Path) -> None:
    async with own_relay(settings, tmp_path, publish_timeout=0.5) as it:
        db, tenant = it.db, it.tenant
        await it.relay.start()
        await it.relay.nats.wait_ready()
        async with db.tenant(tenant) as conn:
            await emit(conn, order_confirmed("before"), tenant_id=tenant, aggregate_id="before")

        async def drained() -> bool:
            return await pending(db, tenant) == 0
        await eventually(drained)

        it.nats.stop()
        written = []
        for i in range(20):  # checkout goes on: each write commits, events wait in the outbox
            async with db.tenant(tenant) as conn:
                written.append(await emit(conn, order_confirmed(f"down-{i}"), tenant_id=tenant,
                                          aggregate_id=f"down-{i}"))

        async def disconnected() -> bool:
            return not it.relay.nats.connected
        await eventually(disconnected, within=5)
        assert await pending(db, tenant) > 0

        it.nats.start()
        await eventually(drained, within=20)
        messages = await published(it.nats.url, tenant)
        ids = [m.headers[naming.MSG_ID] for m in messages if m.headers]
        assert len(ids) == 21 and len(set(ids)) == 21
        assert set(written) <= set(ids)


async def test_an_outbox_row_that_failed_to_publish_records_the_attempt(
        settings: Settings, tmp_path: Path) -> None:
    async with own_relay(settings, tmp_path, publish_timeout=0.3) as it:
        db, tenant = it.db, it.tenant
        await it.relay.start()
        js = await it.relay.nats.wait_ready()
        await js.delete_stream(naming.STREAM)  # connected, but nowhere to publish
        async with db.tenant(tenant) as conn:
            event_id = await emit(conn, order_confirmed("x"), tenant_id=tenant, aggregate_id="x")

        async def attempted() -> bool:
            return int(await scalar(db, tenant, "SELECT attempts FROM {schema}.outbox")) >= 1
        await eventually(attempted)
        assert await pending(db, tenant) == 1
        assert await scalar(db, tenant, "SELECT last_error FROM {schema}.outbox WHERE event_id = :e", e=event_id)


async def test_a_service_starts_while_nats_is_down_and_its_events_flow_once_nats_is_up(
        settings: Settings, tmp_path: Path) -> None:
    async with own_relay(settings, tmp_path, nats_up=False) as it:
        db, tenant = it.db, it.tenant
        async with asyncio.timeout(1):
            await it.relay.start()  # does not wait for NATS
        async with db.tenant(tenant) as conn:
            event_id = await emit(conn, order_confirmed("early"), tenant_id=tenant, aggregate_id="early")
        await asyncio.sleep(0.5)
        assert await pending(db, tenant) == 1
        it.nats.start()

        async def drained() -> bool:
            return await pending(db, tenant) == 0
        await eventually(drained, within=20)
        messages = await published(it.nats.url, tenant)
        assert [m.headers[naming.MSG_ID] for m in messages if m.headers] == [event_id]


async def test_published_rows_are_deleted_and_pending_ones_are_kept_while_nats_is_away(
        settings: Settings, tmp_path: Path) -> None:
    async with own_relay(settings, tmp_path) as it:
        db, tenant = it.db, it.tenant
        await it.relay.start()
        await it.relay.nats.wait_ready()
        async with db.tenant(tenant) as conn:
            await emit(conn, order_confirmed("old"), tenant_id=tenant, aggregate_id="old")

        async def cleaned() -> bool:
            return int(await scalar(db, tenant, "SELECT count(*) FROM {schema}.outbox")) == 0
        await eventually(cleaned)
        it.nats.stop()
        async with db.tenant(tenant) as conn:
            await emit(conn, order_confirmed("waiting"), tenant_id=tenant, aggregate_id="waiting")
        await asyncio.sleep(2.5)  # several cleanup rounds
        assert await pending(db, tenant) == 1
