"""python -m bench.reserve_cpu [N]: what the catalog's side of checkout costs, in-process.

A catalog server (``services.catalog.app.assemble``) on a fresh embedded PostgreSQL, called
over gRPC from the same process with a service token, as the order service calls it:

- CPU per ReserveStock call (client + server: this process's CPU time / N), one-line and
  three-line reservations, N calls one after another; PostgreSQL's CPU per call beside it;
- CPU per commit: CommitReservation over gRPC, and (when the catalog has it) the
  OrderConfirmed handler run as its consumer runs it (inbox row + handler in one
  transaction, no NATS);
- CPU per GetStock call (the cart asks it on every change);
- statements per call, counted by the server (``log_statement = all`` for a few calls,
  BEGIN and COMMIT included), GetStock and a GetProduct the cache does not hold too.

Figures, not pass/fail; not part of ``python -m bench`` (no mesh, no k6).
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc, inventory_pb2, inventory_pb2_grpc
from commerce.common.v1 import event_pb2, money_pb2
from commerce.order.v1 import order_events_pb2, order_pb2
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc

from bench.cpu import group_cpu_seconds
from services.catalog.app import MIGRATIONS, assemble
from services.devmesh.mesh import free_port
from services.devmesh.postgres import Postgres
from services.runtime.bootstrap import open_database
from services.runtime.db import Database, plain_url
from services.runtime.server import Running, create_server
from services.runtime.settings import Settings
from tests.tokens import TestKeys

TENANT = "measure"
Metadata = tuple[tuple[str, str], ...]


class Catalog:
    def __init__(self, channel: grpc.aio.Channel, keys: TestKeys) -> None:
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        self.seller: Metadata = keys.metadata(tenant=TENANT, roles=["seller"])
        self.service: Metadata = (*keys.metadata(tenant="platform", roles=["service"]), ("x-tenant-id", TENANT))

    async def product(self, on_hand: int) -> str:
        created = await self.catalog.CreateProduct(catalog_pb2.CreateProductRequest(product=catalog_pb2.Product(
            sku=f"M-{uuid.uuid4().hex[:10]}", title="Measured", category="bench",
            price=money_pb2.Money(currency_code="USD", amount_minor=100))), metadata=self.seller)
        pid: str = created.product.product_id
        await self.catalog.SetStock(catalog_pb2.SetStockRequest(product_id=pid, on_hand=on_hand), metadata=self.seller)
        return pid

    async def reserve(self, reservation_id: str, product_ids: list[str]) -> None:
        await self.inventory.ReserveStock(inventory_pb2.ReserveStockRequest(
            reservation_id=reservation_id,
            lines=[inventory_pb2.ReservationLine(product_id=p, quantity=1) for p in product_ids]),
            metadata=self.service)

    async def stock(self, product_id: str) -> None:
        await self.catalog.GetStock(catalog_pb2.GetStockRequest(product_id=product_id), metadata=self.seller)

    async def get(self, product_id: str) -> None:
        await self.catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=product_id), metadata=self.seller)

    async def commit(self, reservation_id: str) -> None:
        await self.inventory.CommitReservation(inventory_pb2.CommitReservationRequest(reservation_id=reservation_id),
                                               metadata=self.service)


def order_confirmed(order_id: str, product_ids: list[str]) -> order_events_pb2.OrderConfirmed:
    return order_events_pb2.OrderConfirmed(
        metadata=event_pb2.EventMetadata(event_id=str(uuid.uuid4()), tenant_id=TENANT, aggregate_id=order_id),
        order=order_pb2.Order(order_id=order_id, status=order_pb2.ORDER_STATUS_CONFIRMED,
                              lines=[order_pb2.OrderLine(product_id=p, quantity=1) for p in product_ids]))


Apply = Callable[[order_events_pb2.OrderConfirmed], Awaitable[None]]


def consumer_apply(db: Database) -> Apply | None:
    """What the catalog's OrderConfirmed consumer does per event (EventConsumer._apply_once:
    inbox row, then the handler, in one transaction); None when the catalog has no such consumer."""
    if importlib.util.find_spec("services.catalog.confirmed_orders") is None:
        return None
    from services.catalog import confirmed_orders
    from services.runtime.events.consumer import FIRST_TIME_SQL

    async def apply(event: order_events_pb2.OrderConfirmed) -> None:
        async with db.transaction(TENANT) as session:
            await session.fetchval(FIRST_TIME_SQL, confirmed_orders.DURABLE, event.metadata.event_id)
            await confirmed_orders.on_order_confirmed(session, event, TENANT)

    return apply


async def cpu_per_call(pg: Postgres, n: int, call: Callable[[int], Awaitable[None]]) -> tuple[float, float]:
    """(this process's, PostgreSQL's) CPU milliseconds per call, over ``n`` calls one after another."""
    assert pg.process is not None
    before_pg = group_cpu_seconds(pg.process.pid)
    started = time.process_time()
    for i in range(n):
        await call(i)
    own = time.process_time() - started
    after_pg = group_cpu_seconds(pg.process.pid)
    server = sum(cpu - before_pg.get(pid, 0.0) for pid, cpu in after_pg.items())
    return own * 1000 / n, server * 1000 / n


async def statements_per_call(pg: Postgres, dsn: str, application: str, n: int,
                              call: Callable[[int], Awaitable[None]]) -> float:
    """Statements the server ran for ``application`` per call (BEGIN/COMMIT included), over ``n`` calls."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("ALTER SYSTEM SET log_statement = 'all'")
        await admin.execute("ALTER SYSTEM SET log_line_prefix = '[%a] '")
        await admin.execute("SELECT pg_reload_conf()")
        await asyncio.sleep(0.3)
        start = pg.log_file.stat().st_size
        for i in range(n):
            await call(i)
        await asyncio.sleep(0.3)
        await admin.execute("ALTER SYSTEM RESET log_statement")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()
    with pg.log_file.open("rb") as log:
        log.seek(start)
        text = log.read().decode(errors="replace")
    ran = re.findall(rf"^\[{re.escape(application)}\] LOG:  (?:statement|execute [^:]*):", text, re.MULTILINE)
    return len(ran) / n


async def measure(n: int) -> None:
    keys = TestKeys()
    with tempfile.TemporaryDirectory() as workdir:
        pg = Postgres(Path(workdir) / "pg", free_port(), fast_unsafe=True)
        pg.start()
        running: Running | None = None
        try:
            settings = Settings(database_url=pg.url, database_prefix="measure", db_pool_size=10,
                                metrics_port_offset=0, log_level="WARNING")
            db = await open_database(settings, "catalog", MIGRATIONS)
            running = await create_server(assemble(db, keys.verifier(), sweep_seconds=3600), "127.0.0.1:0", 3600)
            application = settings.database_name("catalog")
            dsn = plain_url(settings.database_url, application)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
                await provisioning_pb2_grpc.ProvisioningServiceStub(channel).ProvisionTenant(
                    provisioning_pb2.ProvisionTenantRequest(tenant_id=TENANT, currency_code="USD"),
                    metadata=keys.metadata(tenant="platform", roles=["service"]))
                await run(Catalog(channel, keys), db, pg, dsn, application, n)
        finally:
            if running is not None:
                await running.stop(0)
            pg.stop()


async def run(catalog: Catalog, db: Database, pg: Postgres, dsn: str, application: str, n: int) -> None:
    one = [await catalog.product(10**8)]
    three = [await catalog.product(10**8) for _ in range(3)]
    apply = consumer_apply(db)
    print(f"N = {n} calls each, one after another (ms per call)")
    for name, products in (("one line", one), ("three lines", three)):
        await cpu_round(catalog, apply, pg, n, name, products)
    own, server = await cpu_per_call(pg, n, lambda i: catalog.stock(one[0]))
    print(f"  GetStock: {own:.3f} ms client+server, {server:.3f} ms PostgreSQL")
    print("statements per call (server-side count, BEGIN/COMMIT included), three lines:")
    await count_round(catalog, apply, pg, dsn, application, three)
    print(f"  GetStock: {await statements_per_call(pg, dsn, application, 20, lambda i: catalog.stock(one[0])):.1f}")
    unread = [await catalog.product(1) for _ in range(20)]
    misses = await statements_per_call(pg, dsn, application, 20, lambda i: catalog.get(unread[i]))
    print(f"  GetProduct, not cached: {misses:.1f}")


async def cpu_round(catalog: Catalog, apply: Apply | None, pg: Postgres, n: int, name: str,
                    products: list[str]) -> None:
    tag = uuid.uuid4().hex[:6]
    for i in range(50):  # warm-up: prepared statements, caches
        await catalog.reserve(f"warm-{tag}-{i}", products)
    own, server = await cpu_per_call(pg, n, lambda i: catalog.reserve(f"r-{tag}-{i}", products))
    print(f"  ReserveStock, {name}: {own:.3f} ms client+server, {server:.3f} ms PostgreSQL")
    own, server = await cpu_per_call(pg, n, lambda i: catalog.commit(f"r-{tag}-{i}"))
    print(f"  CommitReservation, {name}: {own:.3f} ms client+server, {server:.3f} ms PostgreSQL")
    if apply is not None:
        for i in range(n):
            await catalog.reserve(f"c-{tag}-{i}", products)
        events = [order_confirmed(f"c-{tag}-{i}", products) for i in range(n)]
        own, server = await cpu_per_call(pg, n, lambda i: apply(events[i]))
        print(f"  OrderConfirmed consumed (inbox + handler), {name}: {own:.3f} ms, {server:.3f} ms PostgreSQL")


async def refused(call: Awaitable[None]) -> None:
    try:
        await call
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise


async def count_round(catalog: Catalog, apply: Apply | None, pg: Postgres, dsn: str, application: str,
                      products: list[str]) -> None:
    tag, n = uuid.uuid4().hex[:6], 20
    reserves = await statements_per_call(pg, dsn, application, n,
                                         lambda i: catalog.reserve(f"s-{tag}-{i}", products))
    print(f"  ReserveStock: {reserves:.1f}")
    retries = await statements_per_call(pg, dsn, application, n, lambda i: catalog.reserve(f"s-{tag}-{i}", products))
    print(f"  ReserveStock again (a retry): {retries:.1f}")
    empty = await catalog.product(0)
    refusals = await statements_per_call(pg, dsn, application, n,
                                         lambda i: refused(catalog.reserve(f"x-{tag}-{i}", [*products, empty])))
    print(f"  ReserveStock refused (out of stock): {refusals:.1f}")
    commits = await statements_per_call(pg, dsn, application, n, lambda i: catalog.commit(f"s-{tag}-{i}"))
    print(f"  CommitReservation: {commits:.1f}")
    if apply is not None:
        for i in range(n):
            await catalog.reserve(f"e-{tag}-{i}", products)
        events = [order_confirmed(f"e-{tag}-{i}", products) for i in range(n)]
        consumed = await statements_per_call(pg, dsn, application, n, lambda i: apply(events[i]))
        print(f"  OrderConfirmed consumed (inbox + handler): {consumed:.1f}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    asyncio.run(measure(n))


if __name__ == "__main__":
    main()
