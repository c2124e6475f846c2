"""CPU and SQL statements per cart call, measured in one process (figures, not a test).

    python -m bench.getcart [--calls 2000]

Starts a throw-away PostgreSQL and NATS, then in this process (uvloop, as ``run_service``
runs the services) the catalog (with its
outbox relay, as ``make run`` has it) and the cart, over gRPC on free ports; one tenant,
one product, one customer with a one-line cart. Then:

- statements: PostgreSQL logs every statement it runs (``log_statement=all``) during a
  few calls of each kind, counted per database (BEGIN and COMMIT included; the catalog
  relay's polls, reservation sweeps and health probes left out); catalog RPCs are counted with the in-process
  ``commerce_rpc_total`` metric;
- CPU: ``--calls`` GetCart calls one after another; this process's CPU (the client, the
  cart and the catalog it may call) and PostgreSQL's (every backend) per call.

To measure another version of the cart, put its checkout first on PYTHONPATH, e.g.
``PYTHONPATH=/tmp/old:/tmp/old/gen/python .venv/bin/python -m bench.getcart``. Figures, not
a test: compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import grpc
import uvloop
from commerce.cart.v1 import cart_pb2, cart_pb2_grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from commerce.common.v1 import money_pb2
from prometheus_client import REGISTRY

from bench.cpu import group_cpu_seconds
from services.cart.app import MIGRATIONS as CART_MIGRATIONS
from services.cart.app import assemble as assemble_cart
from services.catalog.app import MIGRATIONS as CATALOG_MIGRATIONS
from services.catalog.app import assemble as assemble_catalog
from services.devmesh.mesh import free_port
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.bootstrap import open_database
from services.runtime.events.relay import OutboxRelay
from services.runtime.server import create_server
from services.runtime.settings import Settings
from tests.catalog.harness import provision
from tests.tokens import TestKeys

TENANT = "measure-shop"
LOGGED = re.compile(r"^(\w+)\|.*LOG:\s+(?:statement|execute [^:]*):\s*(.*)$")
PROBES = 20
# Background work (the catalog's outbox relay polls and reservation sweeps, health probes), not counted.
BACKGROUND = re.compile(r"outbox|reservation|^SELECT 1$")


def catalog_rpcs() -> float:
    return sum(sample.value for metric in REGISTRY.collect() if metric.name == "commerce_rpc"
               for sample in metric.samples
               if sample.name == "commerce_rpc_total" and "CatalogService" in sample.labels.get("method", ""))


async def set_logging(pg: Postgres, on: bool) -> None:
    conn = await asyncpg.connect(pg.url)
    try:
        await conn.execute("ALTER SYSTEM SET log_line_prefix = '%d|'")
        await conn.execute(f"ALTER SYSTEM SET log_statement = '{'all' if on else 'none'}'")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()
    await asyncio.sleep(0.5)


def _logged_since(log_file: Path, offset: int) -> list[str]:
    with open(log_file, encoding="utf-8", errors="replace") as log:
        log.seek(offset)
        return log.read().splitlines()


async def statements(pg: Postgres, calls: int, call: Callable[[int], Awaitable[object]]) -> tuple[str, float]:
    """Statements per call by database, and catalog RPCs per call."""
    start = pg.log_file.stat().st_size
    rpcs = catalog_rpcs()
    for i in range(calls):
        await call(i)
    await asyncio.sleep(0.3)
    rpcs = catalog_rpcs() - rpcs
    lines = await asyncio.to_thread(_logged_since, pg.log_file, start)
    per_db: Counter[str] = Counter()
    for line in lines:
        found = LOGGED.match(line)
        if found and not BACKGROUND.search(found.group(2)) and found.group(1).endswith(("_cart", "_catalog")):
            per_db[found.group(1).rsplit("_", 1)[1]] += 1
    counts = ", ".join(f"{db} {n / calls:.1f}" for db, n in sorted(per_db.items())) or "none"
    return counts, rpcs / calls


async def measure(workdir: Path, calls: int) -> None:
    pg, nats = Postgres(workdir / "pg", free_port(), fast_unsafe=True), Nats(workdir / "nats", free_port())
    pg.start()
    nats.start()
    try:
        await _measure(pg, nats, calls)
    finally:
        nats.stop()
        pg.stop()


async def _measure(pg: Postgres, nats: Nats, calls: int) -> None:
    settings = Settings(database_url=pg.url, nats_url=nats.url, database_prefix="measure", db_pool_size=5)
    keys = TestKeys()
    catalog_db = await open_database(settings, "catalog", CATALOG_MIGRATIONS)
    catalog = await create_server(assemble_catalog(catalog_db, keys.verifier(),
                                                   relay=OutboxRelay(catalog_db, settings)), "127.0.0.1:0")
    cart_db = await open_database(settings, "cart", CART_MIGRATIONS)
    cart = await create_server(assemble_cart(cart_db, keys.verifier(), settings, f"127.0.0.1:{catalog.port}"),
                               "127.0.0.1:0")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}") as catalog_ch, \
            grpc.aio.insecure_channel(f"127.0.0.1:{cart.port}") as cart_ch:
        await provision(catalog_ch, keys, TENANT)
        await provision(cart_ch, keys, TENANT)
        seller = keys.metadata(tenant=TENANT, roles=["seller"], ttl_seconds=3600)
        customer = keys.metadata(tenant=TENANT, roles=["customer"], sub="user-measure", ttl_seconds=3600)
        catalog_stub = catalog_pb2_grpc.CatalogServiceStub(catalog_ch)
        cart_stub = cart_pb2_grpc.CartServiceStub(cart_ch)
        product = (await catalog_stub.CreateProduct(catalog_pb2.CreateProductRequest(product=catalog_pb2.Product(
            sku=f"M-{uuid.uuid4().hex[:8]}", title="Trail shoe", category="shoes", attributes={"weight_grams": "850"},
            price=money_pb2.Money(currency_code="USD", amount_minor=1250))), metadata=seller)).product
        await catalog_stub.SetStock(catalog_pb2.SetStockRequest(product_id=product.product_id, on_hand=1_000_000),
                                    metadata=seller)
        await asyncio.sleep(1.0)  # the product's event reaches the cart (if it listens)

        async def add(who: tuple[tuple[str, str], ...], request_id: str = "") -> None:
            await cart_stub.AddCartItem(cart_pb2.AddCartItemRequest(
                product_id=product.product_id, quantity=1, request_id=request_id), metadata=who)

        async def update(quantity: int) -> None:
            await cart_stub.UpdateCartItem(cart_pb2.UpdateCartItemRequest(
                product_id=product.product_id, quantity=quantity), metadata=customer)

        async def get(_: int) -> None:
            await cart_stub.GetCart(cart_pb2.GetCartRequest(), metadata=customer)

        await add(customer)
        await add(customer, "again")
        for i in range(200):  # warm up: connections, prepared statements, caches
            await get(i)

        await set_logging(pg, True)
        figures = {
            "GetCart (one line)": await statements(pg, PROBES, get),
            "AddCartItem, to an existing line": await statements(pg, PROBES, lambda _: add(customer)),
            "AddCartItem, a new shopper's first": await statements(pg, PROBES, lambda i: add(keys.metadata(
                tenant=TENANT, roles=["customer"], sub=f"user-new-{i}", ttl_seconds=3600))),
            "AddCartItem, a retry (same request_id)": await statements(pg, PROBES, lambda _: add(customer, "again")),
            "UpdateCartItem, raising": await statements(pg, PROBES, lambda i: update(100 + i)),
            "UpdateCartItem, lowering": await statements(pg, PROBES, lambda i: update(99 - i)),
        }
        await set_logging(pg, False)

        assert pg.process is not None
        pg_before = sum(group_cpu_seconds(pg.process.pid).values())
        started, wall = time.process_time(), time.perf_counter()
        for i in range(calls):
            await get(i)
        wall = time.perf_counter() - wall
        process_ms = (time.process_time() - started) / calls * 1000
        pg_ms = (sum(group_cpu_seconds(pg.process.pid).values()) - pg_before) / calls * 1000

    print("\nstatements per call (by database) and catalog RPCs per call:")
    for name, (counts, rpcs) in figures.items():
        print(f"  {name:<40} SQL: {counts:<24} catalog RPCs: {rpcs:.1f}")
    print(f"\nGetCart x {calls}, one-line cart, one after another:")
    print(f"  this process (client + cart + catalog): {process_ms:.3f} ms CPU per call")
    print(f"  PostgreSQL (all backends):              {pg_ms:.3f} ms CPU per call")
    print(f"  wall: {wall / calls * 1000:.3f} ms per call")
    await cart.stop(0)
    await catalog.stop(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="measure-cart-") as tmp:
        uvloop.run(measure(Path(tmp), args.calls))


if __name__ == "__main__":
    main()
