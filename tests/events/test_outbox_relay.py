"""The outbox and its relay against real PostgreSQL and NATS JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text

from services.devmesh.nats import Nats
from services.runtime.db import Database, schema_for
from services.runtime.events import naming
from services.runtime.events.listener import listener_dsn
from services.runtime.events.outbox import CHANNEL, emit
from services.runtime.events.relay import OutboxRelay
from services.runtime.settings import Settings
from tests.conftest import free_port
from tests.events.harness import connect, eventually, open_db, order_confirmed, provisioned, read_all, scalar


async def pending(db: Database, tenant: str) -> int:
    return int(await scalar(db, tenant, "SELECT count(*) FROM {schema}.outbox WHERE state = 'pending'"))


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

    nc = await connect(nats_server.url)
    try:
        messages = await read_all(nc, naming.STREAM, f"commerce.*.v1.*.{tenant}")
    finally:
        await nc.close()
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
    nc = await connect(nats_server.url)
    try:
        messages = await read_all(nc, naming.STREAM, f"commerce.*.v1.*.{tenant}")
    finally:
        await nc.close()
    assert [order_confirmed().FromString(m.data).order.order_id for m in messages] == ["ord-kept"]
    assert await scalar(db, tenant, "SELECT count(*) FROM {schema}.outbox") == 1


async def test_a_commit_notifies_the_relay_once_with_the_tenant_schema_and_a_rollback_not_at_all(
        db: Database) -> None:
    tenant = await provisioned(db)
    schema = schema_for(tenant)
    heard: asyncio.Queue[str] = asyncio.Queue()
    listening = await asyncpg.connect(listener_dsn(db))
    await listening.add_listener(CHANNEL, lambda _c, _p, _ch, payload: heard.put_nowait(payload))

    async def notifications(settle: float) -> list[str]:
        await asyncio.sleep(settle)
        found = []
        while not heard.empty():
            found.append(heard.get_nowait())
        return [p for p in found if p == schema]  # other tests' tenants share the channel
    try:
        with pytest.raises(RuntimeError):
            async with db.tenant(tenant) as conn:
                await emit(conn, order_confirmed("lost"), tenant_id=tenant, aggregate_id="lost")
                raise RuntimeError("rolled back")
        assert await notifications(0.3) == []
        async with db.tenant(tenant) as conn:
            await emit(conn, order_confirmed("a"), tenant_id=tenant, aggregate_id="a")
            await emit(conn, order_confirmed("b"), tenant_id=tenant, aggregate_id="b")
        assert await notifications(0.3) == [schema]
    finally:
        await listening.close()


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
        nc = await connect(it.nats.url)
        try:
            messages = await read_all(nc, naming.STREAM, f"commerce.*.v1.*.{tenant}")
        finally:
            await nc.close()
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
        nc = await connect(it.nats.url)
        try:
            messages = await read_all(nc, naming.STREAM, f"commerce.*.v1.*.{tenant}")
        finally:
            await nc.close()
        assert [m.headers[naming.MSG_ID] for m in messages if m.headers] == [event_id]


async def test_published_rows_are_deleted_after_the_retention_and_pending_ones_never(
        settings: Settings, tmp_path: Path) -> None:
    async with own_relay(settings, tmp_path, retention_seconds=0, cleanup_every_seconds=0) as it:
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


async def test_events_still_flow_while_the_relay_cannot_listen_for_notifications(
        settings: Settings, tmp_path: Path) -> None:
    async with own_relay(settings, tmp_path) as it:
        db, tenant = it.db, it.tenant
        await it.relay.start()
        await it.relay.nats.wait_ready()
        async with db.engine.connect() as conn:  # cut the relay's LISTEN connection, again and again
            kill = text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name")
            for i in range(3):
                killed = (await conn.execute(kill, {"name": f"{db.database}-relay"})).all()
                await conn.commit()
                assert i > 0 or killed, "the relay's LISTEN connection was not found"
                async with db.tenant(tenant) as tx:
                    await emit(tx, order_confirmed(f"o{i}"), tenant_id=tenant, aggregate_id=f"o{i}")
                await asyncio.sleep(0.1)

        async def drained() -> bool:
            return await pending(db, tenant) == 0
        await eventually(drained, within=10)
