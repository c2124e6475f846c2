"""The catalog commits a reservation when it consumes OrderConfirmed (the order id is
the reservation id), through JetStream as the order service's relay publishes it:
once per event, a held one even past its expiry, a lapsed one's units taken again
when they are there, and a StockShortfall (nothing taken) when they are not.

A catalog of its own (own database, so no other sweeper expires these
reservations behind the tests' back) with its consumer of confirmed orders."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import nats
import pytest
from commerce.catalog.v1 import catalog_events_pb2 as ev
from commerce.catalog.v1 import inventory_pb2, inventory_pb2_grpc
from commerce.common.v1 import event_pb2
from commerce.order.v1 import order_events_pb2, order_pb2
from nats.aio.client import Client
from nats.js import JetStreamContext
from sqlalchemy import text

from services.catalog import confirmed_orders
from services.catalog.app import MIGRATIONS, assemble
from services.catalog.inventory import Inventory
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.bootstrap import open_database
from services.runtime.db import Database, schema_for
from services.runtime.events import naming
from services.runtime.events.connection import ensure_streams
from services.runtime.events.consumer import DLQ_REASON
from services.runtime.server import create_server
from services.runtime.settings import Settings
from tests.catalog.conftest import Stockroom, new_shop, new_tenant_id
from tests.catalog.harness import count_rows, outbox
from tests.events.harness import read_all
from tests.tokens import TestKeys

MAX_DELIVER = 3


@dataclass
class Consuming:
    """The catalog under test, its database, and JetStream as the order service publishes to it."""

    channel: grpc.aio.Channel
    db: Database
    nc: Client
    js: JetStreamContext
    durable: str
    published: int = 0  # the stream sequence of the last event published here

    async def stockroom(self, keys: TestKeys) -> Stockroom:
        return Stockroom(await new_shop(self.channel, keys), inventory_pb2_grpc.InventoryServiceStub(self.channel))

    async def publish(self, tenant: str, order_id: str, *lines: tuple[str, int], event_id: str | None = None,
                      payload: bytes | None = None) -> str:
        """Publishes OrderConfirmed (a new Nats-Msg-Id each time, so a repeat is not deduplicated
        by JetStream: only the consumer's inbox stands in the way). Returns the event id."""
        event_id = event_id or str(uuid.uuid4())
        event = order_events_pb2.OrderConfirmed(
            metadata=event_pb2.EventMetadata(event_id=event_id, event_type=order_events_pb2.OrderConfirmed.DESCRIPTOR
                                             .full_name, tenant_id=tenant, aggregate_id=order_id),
            order=order_pb2.Order(order_id=order_id, status=order_pb2.ORDER_STATUS_CONFIRMED,
                                  lines=[order_pb2.OrderLine(product_id=p, quantity=q) for p, q in lines]))
        ack = await self.js.publish(naming.subject_for(event.DESCRIPTOR, tenant),
                                    event.SerializeToString() if payload is None else payload,
                                    headers={naming.MSG_ID: str(uuid.uuid4()),
                                             naming.EVENT_TYPE: event.DESCRIPTOR.full_name, naming.TENANT: tenant})
        self.published = max(self.published, ack.seq)
        return event_id

    async def drained(self, within: float = 15.0) -> None:
        """Until the consumer has acknowledged everything published so far (its ack floor past the
        last event published here: right after a publish, the consumer may not count it yet)."""
        deadline = time.monotonic() + within
        while True:
            info = await self.js.consumer_info(naming.STREAM, self.durable)
            acked = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
            if not info.num_pending and not info.num_ack_pending and acked >= self.published:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"consumer not drained within {within}s: {info}")
            await asyncio.sleep(0.05)

    async def state(self, tenant: str, reservation_id: str) -> str | None:
        async with self.db.engine.connect() as conn:
            state: str | None = await conn.scalar(text(
                f'SELECT state FROM "{schema_for(tenant)}".reservations WHERE reservation_id = :r'),
                {"r": reservation_id})
            return state

    async def lapse(self, tenant: str, reservation_id: str) -> None:
        """Its expire_time passes (the sweeper of this catalog runs once an hour)."""
        async with self.db.engine.begin() as conn:
            await conn.execute(text(f'UPDATE "{schema_for(tenant)}".reservations '
                                    "SET expire_time = now() - interval '1 second' WHERE reservation_id = :r"),
                               {"r": reservation_id})


@pytest.fixture(scope="module")
async def consuming(postgres: Postgres, nats_server: Nats, keys: TestKeys) -> AsyncIterator[Consuming]:
    settings = Settings(database_url=postgres.url, nats_url=nats_server.url, database_prefix="catorders",
                        db_pool_size=5, metrics_port_offset=0)
    durable = f"catalog-order-confirmed-{uuid.uuid4().hex[:8]}"
    db = await open_database(settings, "catalog", MIGRATIONS)
    orders = confirmed_orders.consumer(db, settings, MIGRATIONS, durable=durable, max_deliver=MAX_DELIVER,
                                       nak_base_seconds=0.05, nak_max_seconds=0.2)
    running = await create_server(assemble(db, keys.verifier(), sweep_seconds=3600, orders=orders), "127.0.0.1:0",
                                  0.2)
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        await asyncio.wait_for(orders.wait_subscribed(), 15)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Consuming(channel, db, nc, js, durable)
    finally:
        await nc.close()
        await running.stop(0)


def shortfalls(rows: list[tuple[str, str, bytes]]) -> list[ev.StockShortfall]:
    return [ev.StockShortfall.FromString(p) for t, _, p in rows if t == "commerce.catalog.v1.StockShortfall"]


async def test_a_held_reservation_is_committed_once_even_when_its_event_comes_twice(
        consuming: Consuming, keys: TestKeys) -> None:
    stockroom = await consuming.stockroom(keys)
    tenant = stockroom.shop.tenant
    shoe, sock = await stockroom.product(10), await stockroom.product(10)
    await stockroom.reserve("ord-1", (shoe, 3), (sock, 1))
    events_before = len(await outbox(consuming.db, tenant))
    event_id = await consuming.publish(tenant, "ord-1", (shoe, 3), (sock, 1))
    await consuming.publish(tenant, "ord-1", (shoe, 3), (sock, 1), event_id=event_id)  # redelivered
    await consuming.publish(tenant, "ord-1", (shoe, 3), (sock, 1))  # the order service published it again
    await consuming.drained()
    assert await consuming.state(tenant, "ord-1") == "COMMITTED"
    assert [await stockroom.stock(p) for p in (shoe, sock)] == [(7, 0, 7), (9, 0, 9)]
    assert len(await outbox(consuming.db, tenant)) == events_before  # no StockCommitted, nothing else
    committed = await stockroom.commit("ord-1")  # CommitReservation: committed already, unchanged
    assert committed.state == inventory_pb2.RESERVATION_STATE_COMMITTED
    assert [await stockroom.stock(p) for p in (shoe, sock)] == [(7, 0, 7), (9, 0, 9)]


async def test_a_reservation_held_past_its_expiry_but_not_yet_swept_is_committed(
        consuming: Consuming, keys: TestKeys) -> None:
    stockroom = await consuming.stockroom(keys)
    tenant = stockroom.shop.tenant
    pid = await stockroom.product(10)
    await stockroom.reserve("ord-1", (pid, 4))
    await consuming.lapse(tenant, "ord-1")
    await consuming.publish(tenant, "ord-1", (pid, 4))
    await consuming.drained()
    assert await consuming.state(tenant, "ord-1") == "COMMITTED"
    assert await stockroom.stock(pid) == (6, 0, 6)
    assert shortfalls(await outbox(consuming.db, tenant)) == []


async def test_lapsed_reservations_confirmed_while_the_sweeper_runs_are_each_sold_once(
        consuming: Consuming, keys: TestKeys) -> None:
    stockroom = await consuming.stockroom(keys)
    tenant = stockroom.shop.tenant
    shoe, sock = await stockroom.product(100), await stockroom.product(100)
    orders = [f"ord-{n}" for n in range(20)]
    for order in orders:
        await stockroom.reserve(order, (shoe, 2), (sock, 3))
        await consuming.lapse(tenant, order)
    sweeper = Inventory(consuming.db)
    await asyncio.gather(*(consuming.publish(tenant, order, (shoe, 2), (sock, 3)) for order in orders),
                         *(sweeper.sweep(tenant, limit=3) for _ in range(5)))
    await consuming.drained()
    assert {await consuming.state(tenant, order) for order in orders} == {"COMMITTED"}
    assert [await stockroom.stock(p) for p in (shoe, sock)] == [(60, 0, 60), (40, 0, 40)]
    assert shortfalls(await outbox(consuming.db, tenant)) == []


@pytest.mark.parametrize("gone", ["expired", "released", "never reserved"])
async def test_a_lapsed_or_missing_reservations_units_are_taken_again_when_they_are_available(
        consuming: Consuming, keys: TestKeys, gone: str) -> None:
    stockroom = await consuming.stockroom(keys)
    tenant = stockroom.shop.tenant
    shoe, sock = await stockroom.product(10), await stockroom.product(3)
    if gone != "never reserved":
        await stockroom.reserve("ord-1", (shoe, 6), (sock, 3))
        if gone == "released":
            await stockroom.release("ord-1")
        else:
            await consuming.lapse(tenant, "ord-1")
            assert await Inventory(consuming.db).sweep(tenant) == 1
        assert [await stockroom.stock(p) for p in (shoe, sock)] == [(10, 0, 10), (3, 0, 3)]
    low_before = [t for t, _, _ in await outbox(consuming.db, tenant)].count("commerce.catalog.v1.LowStock")
    await consuming.publish(tenant, "ord-1", (shoe, 6), (sock, 3))
    await consuming.drained()
    assert await consuming.state(tenant, "ord-1") == "COMMITTED"
    assert [await stockroom.stock(p) for p in (shoe, sock)] == [(4, 0, 4), (0, 0, 0)]
    rows = await outbox(consuming.db, tenant)
    assert shortfalls(rows) == []
    assert [t for t, _, _ in rows].count("commerce.catalog.v1.LowStock") == low_before + 1  # shoes: 10 -> 4
    committed = await stockroom.commit("ord-1")  # the sale is recorded with its lines
    assert [(x.product_id, x.quantity) for x in committed.lines] == sorted([(shoe, 6), (sock, 3)])


async def test_units_sold_meanwhile_are_not_taken_and_a_shortfall_is_published(
        consuming: Consuming, keys: TestKeys) -> None:
    stockroom = await consuming.stockroom(keys)
    tenant = stockroom.shop.tenant
    shoe, sock = await stockroom.product(10), await stockroom.product(5)
    await stockroom.reserve("ord-1", (shoe, 2), (sock, 3))
    await stockroom.release("ord-1")
    await stockroom.reserve("ord-2", (sock, 4))  # one sock left
    await consuming.publish(tenant, "ord-1", (shoe, 2), (sock, 3))
    await consuming.drained()
    assert await consuming.state(tenant, "ord-1") == "RELEASED"
    assert [await stockroom.stock(p) for p in (shoe, sock)] == [(10, 0, 10), (5, 4, 1)]  # nothing taken
    [shortfall] = shortfalls(await outbox(consuming.db, tenant))
    assert (shortfall.reservation_id, shortfall.product_id, shortfall.available) == ("ord-1", sock, 1)
    assert sorted((x.product_id, x.quantity) for x in shortfall.lines) == sorted([(shoe, 2), (sock, 3)])
    assert (shortfall.metadata.tenant_id, shortfall.metadata.aggregate_id) == (tenant, "ord-1")


async def test_an_order_of_unknown_products_takes_nothing_and_is_a_shortfall(consuming: Consuming,
                                                                            keys: TestKeys) -> None:
    stockroom = await consuming.stockroom(keys)
    tenant = stockroom.shop.tenant
    pid, unknown = await stockroom.product(10), "prd_01JDAAAAAAAAAAAAAAAAAAAAAA"
    await consuming.publish(tenant, "ord-1", (pid, 1), (unknown, 1))
    await consuming.drained()
    assert await consuming.state(tenant, "ord-1") is None
    assert await stockroom.stock(pid) == (10, 0, 10)
    [shortfall] = shortfalls(await outbox(consuming.db, tenant))
    assert (shortfall.product_id, shortfall.available) == (unknown, 0)


async def _dead_letters(consuming: Consuming, tenant: str) -> list[dict[str, str]]:
    messages = await read_all(consuming.nc, "COMMERCE_DLQ", f"dlq.commerce.order.v1.order_confirmed.{tenant}")
    return [dict(m.headers or {}) for m in messages]


async def test_an_undecodable_event_is_dead_lettered_at_once_and_changes_nothing(consuming: Consuming,
                                                                                 keys: TestKeys) -> None:
    stockroom = await consuming.stockroom(keys)
    tenant = stockroom.shop.tenant
    pid = await stockroom.product(10)
    await stockroom.reserve("ord-1", (pid, 2))
    await consuming.publish(tenant, "ord-1", payload=b"\x12\xff\x01garbage")
    await consuming.drained()
    [dead] = await _dead_letters(consuming, tenant)
    assert dead[DLQ_REASON].startswith("cannot decode")
    assert await consuming.state(tenant, "ord-1") == "HELD"
    assert await stockroom.stock(pid) == (10, 2, 8)


@pytest.mark.parametrize("order_id, bad_line", [("", None), ("ord 1", None), ("ord-1", ("not-a-product", 1)),
                                                 ("ord-1", ("prd_01JDAAAAAAAAAAAAAAAAAAAAAA", 0))])
async def test_an_event_that_names_no_valid_sale_is_dead_lettered_after_its_deliveries_and_changes_nothing(
        consuming: Consuming, keys: TestKeys, order_id: str, bad_line: tuple[str, int] | None) -> None:
    stockroom = await consuming.stockroom(keys)
    tenant = stockroom.shop.tenant
    pid = await stockroom.product(10)
    await stockroom.reserve("ord-1", (pid, 2))
    await consuming.publish(tenant, order_id, (pid, 2), *([bad_line] if bad_line else []))
    await consuming.drained()
    [dead] = await _dead_letters(consuming, tenant)
    assert dead[DLQ_REASON].startswith("InvalidArgument")
    assert await consuming.state(tenant, "ord-1") == "HELD"
    assert await stockroom.stock(pid) == (10, 2, 8)
    assert shortfalls(await outbox(consuming.db, tenant)) == []


async def test_an_event_of_a_tenant_without_a_catalog_schema_creates_it_and_reports_the_shortfall(
        consuming: Consuming) -> None:
    tenant, pid = new_tenant_id(), "prd_01JDAAAAAAAAAAAAAAAAAAAAAA"
    await consuming.publish(tenant, "ord-1", (pid, 1))
    await consuming.drained()
    assert await count_rows(consuming.db, tenant, "stock") == 0
    [shortfall] = shortfalls(await outbox(consuming.db, tenant))
    assert (shortfall.reservation_id, shortfall.product_id, shortfall.available) == ("ord-1", pid, 0)
