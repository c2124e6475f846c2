"""Inventory across processes: sweepers of several replicas expiring the same
lapsed reservations, and the relay publishing stock events to JetStream."""

from __future__ import annotations

import asyncio

import grpc
import nats
from commerce.catalog.v1 import catalog_events_pb2 as ev
from commerce.catalog.v1 import inventory_pb2_grpc
from sqlalchemy import text

from services.catalog.app import MIGRATIONS, assemble
from services.catalog.inventory import Inventory
from services.catalog.sweeper import ReservationSweeper
from services.devmesh.nats import Nats
from services.runtime.bootstrap import open_database
from services.runtime.db import Database, schema_for
from services.runtime.events.relay import OutboxRelay
from services.runtime.server import create_server
from services.runtime.settings import Settings
from tests.catalog.conftest import Stockroom
from tests.events.harness import eventually, read_all
from tests.tokens import TestKeys


async def test_sweepers_of_several_replicas_expire_each_reservation_once(
        stockroom: Stockroom, catalog_db: Database, catalog_settings: Settings) -> None:
    pid = await stockroom.product(200)
    tenant = stockroom.shop.tenant
    await asyncio.gather(*(stockroom.reserve(f"ord-{n}", (pid, 1)) for n in range(150)))
    async with catalog_db.engine.begin() as conn:
        await conn.execute(text(f'UPDATE "{schema_for(tenant)}".reservations '
                                "SET expire_time = now() - interval '1 second'"))
    replicas = [Database(catalog_settings.database_url, catalog_settings.database_name("catalog"), 2)
                for _ in range(3)]
    try:
        await asyncio.gather(*(ReservationSweeper(db, Inventory(db)).sweep_once() for db in replicas))
    finally:
        await asyncio.gather(*(db.dispose() for db in replicas))
    assert await stockroom.stock(pid) == (200, 0, 200)
    async with catalog_db.engine.connect() as conn:
        states = (await conn.execute(text(
            f'SELECT state, count(*) FROM "{schema_for(tenant)}".reservations GROUP BY state'))).all()
        released = await conn.scalar(text(
            f'SELECT count(*) FROM "{schema_for(tenant)}".outbox WHERE event_type LIKE \'%.StockReleased\''))
    assert [tuple(row) for row in states] == [("EXPIRED", 150)]
    assert released == 150  # one event per reservation: none expired twice


async def test_stock_events_reach_jetstream_through_the_relay(
        stockroom: Stockroom, catalog_settings: Settings, keys: TestKeys, nats_server: Nats,
        catalog_db: Database) -> None:
    settings = catalog_settings.model_copy(update={"nats_url": nats_server.url})
    db = await open_database(settings, "catalog", MIGRATIONS)
    running = await create_server(assemble(db, keys.verifier(), relay=OutboxRelay(db, settings)), "127.0.0.1:0")
    tenant = stockroom.shop.tenant
    nc = await nats.connect(nats_server.url)
    try:
        pid = await stockroom.product(10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            replica = Stockroom(stockroom.shop, inventory_pb2_grpc.InventoryServiceStub(channel))
            await replica.reserve("ord-1", (pid, 2))
            await replica.commit("ord-1")
            await replica.reserve("ord-2", (pid, 1))
            await replica.release("ord-2")

        async def all_sent() -> bool:
            async with catalog_db.engine.connect() as conn:
                return not await conn.scalar(text(
                    f'SELECT count(*) FROM "{schema_for(tenant)}".outbox WHERE state <> \'sent\''))

        await eventually(all_sent)
        messages = await read_all(nc, "COMMERCE", f"commerce.catalog.v1.*.{tenant}")
    finally:
        await nc.close()
        await running.stop(0)
    by_subject = {m.subject: m for m in messages}
    released = by_subject[f"commerce.catalog.v1.stock_released.{tenant}"]
    event = ev.StockReleased.FromString(released.data)
    assert (event.reservation_id, [(x.product_id, x.quantity) for x in event.lines]) == ("ord-2", [(pid, 1)])
    assert released.headers is not None and released.headers["Nats-Msg-Id"] == event.metadata.event_id
    assert released.headers["Commerce-Tenant"] == tenant
    # Deprecated, no longer published: nothing consumed them.
    assert not {f"commerce.catalog.v1.stock_reserved.{tenant}", f"commerce.catalog.v1.stock_committed.{tenant}"} \
        & set(by_subject)
