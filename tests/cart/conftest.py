"""The cart service and the catalog it prices from, both in-process on free
ports against the session's real PostgreSQL and NATS (the catalog's events reach
the cart's copy of the catalog), with tokens from a test key. Each test gets its
own tenant, provisioned in both services as the tenant service does."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import grpc
import nats
import pytest
from commerce.cart.v1 import cart_pb2 as pb
from commerce.cart.v1 import cart_pb2_grpc
from commerce.catalog.v1 import catalog_pb2 as cpb
from commerce.catalog.v1 import catalog_pb2_grpc
from commerce.common.v1 import money_pb2
from nats.js import JetStreamContext

from services.cart.app import MIGRATIONS
from services.cart.app import assemble as assemble_cart
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.bootstrap import open_database
from services.runtime.db import Database, schema_for
from services.runtime.events.connection import ensure_streams
from services.runtime.server import Running, create_server
from services.runtime.settings import Settings
from tests.catalog.harness import Metadata, provision, start_catalog
from tests.conftest import free_port, own_nats
from tests.tokens import TestKeys


@pytest.fixture(scope="session")
def cart_keys() -> TestKeys:
    return TestKeys()


@pytest.fixture(scope="session")
def cart_nats(workdir: Path) -> Iterator[Nats]:
    """The cart tests' own NATS (the session mesh's cart consumes with the same durable names)."""
    yield from own_nats(workdir / "cart-nats")


@pytest.fixture(scope="session")
def cart_settings(postgres: Postgres, cart_nats: Nats) -> Settings:
    return Settings(database_url=postgres.url, nats_url=cart_nats.url, database_prefix="carttest", db_pool_size=5)


@pytest.fixture(scope="session")
async def catalog_server(cart_settings: Settings, cart_keys: TestKeys) -> AsyncIterator[Running]:
    running, _ = await start_catalog(cart_settings, cart_keys, events=True)
    yield running
    await running.stop(0)


@pytest.fixture(scope="session")
async def cart_server(cart_settings: Settings, cart_keys: TestKeys, catalog_server: Running) -> AsyncIterator[Running]:
    db = await open_database(cart_settings, "cart", MIGRATIONS)
    app = assemble_cart(db, cart_keys.verifier(), cart_settings, f"127.0.0.1:{catalog_server.port}")
    running = await create_server(app, "127.0.0.1:0", 0.2)
    yield running
    await running.stop(0)


@pytest.fixture(scope="session")
async def cart_db(cart_server: Running, cart_settings: Settings) -> AsyncIterator[Database]:
    """A separate handle on the cart's database, for counting rows behind the service's back."""
    db = Database(cart_settings.database_url, cart_settings.database_name("cart"), 2)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
async def cart_channel(cart_server: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{cart_server.port}") as ch:
        yield ch


@pytest.fixture
async def blind_cart(cart_settings: Settings, cart_keys: TestKeys, cart_server: Running) -> AsyncIterator[Running]:
    """A second cart replica on the same database, whose catalog address answers nothing:
    any catalog call it made would fail (UNAVAILABLE)."""
    db = Database(cart_settings.database_url, cart_settings.database_name("cart"), 2)
    app = assemble_cart(db, cart_keys.verifier(), cart_settings, f"127.0.0.1:{free_port()}")
    running = await create_server(app, "127.0.0.1:0")
    yield running
    await running.stop(0)


@pytest.fixture
async def blind_channel(blind_cart: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{blind_cart.port}") as channel:
        yield channel


@pytest.fixture
async def js(cart_nats: Nats, cart_server: Running) -> AsyncIterator[JetStreamContext]:
    """JetStream, to publish events as the other services' relays do."""
    nc = await nats.connect(cart_nats.url)
    stream = nc.jetstream()
    await ensure_streams(stream)
    yield stream
    await nc.close()


@pytest.fixture(scope="session")
async def catalog_channel(catalog_server: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{catalog_server.port}") as ch:
        yield ch


COPY_WAIT_SECONDS = 10.0


async def copied_version(cart_db: Database, tenant: str, product_id: str) -> datetime | None:
    """The version (update_time) of the product in the cart's copy of the catalog."""
    async with cart_db.session_in(schema_for(tenant)) as session:
        version: datetime | None = await session.conn.fetchval(
            f'SELECT update_time FROM "{session.schema}".products WHERE product_id = $1', product_id)
    return version


@dataclass
class Shop:
    """One tenant provisioned in the catalog and the cart, and tokens of its users.
    With ``cart_db``, a catalog change made through it returns once the cart's copy of
    the catalog has it (its event consumed), as a shopper would see it a moment later."""

    tenant: str
    cart: cart_pb2_grpc.CartServiceStub
    catalog: catalog_pb2_grpc.CatalogServiceStub
    keys: TestKeys
    cart_db: Database | None = None

    async def copied(self, product: cpb.Product) -> None:
        """Waits until the cart's copy holds ``product`` (this version, or a newer one)."""
        if self.cart_db is None:
            return
        want = product.update_time.ToDatetime(UTC)
        deadline = time.monotonic() + COPY_WAIT_SECONDS
        while (got := await copied_version(self.cart_db, self.tenant, product.product_id)) is None or got < want:
            if time.monotonic() > deadline:
                raise AssertionError(f"the cart's copy has {product.product_id} at {got}, not {want}")
            await asyncio.sleep(0.02)

    def as_(self, *roles: str, sub: str | None = None) -> Metadata:
        return self.keys.metadata(tenant=self.tenant, roles=roles, sub=sub)

    @property
    def seller(self) -> Metadata:
        return self.as_("seller")

    def customer(self, sub: str = "user-alice") -> Metadata:
        return self.as_("customer", sub=sub)

    def guest(self, sub: str = "guest:0123abcd") -> Metadata:
        return self.as_("guest", sub=sub)

    async def product(self, *, price: int = 1250, currency: str = "USD", stock: int = 50,
                      title: str = "Trail shoe", attributes: dict[str, str] | None = None,
                      status: cpb.ProductStatus = cpb.PRODUCT_STATUS_ACTIVE) -> cpb.Product:
        """A product (active unless ``status`` says otherwise) with ``stock`` units on hand."""
        reply = await self.catalog.CreateProduct(cpb.CreateProductRequest(product=cpb.Product(
            sku=f"SKU-{uuid.uuid4().hex[:10]}", title=title, category="shoes", attributes=attributes or {},
            price=money_pb2.Money(currency_code=currency, amount_minor=price), status=status)),
            metadata=self.seller)
        if stock:
            await self.catalog.SetStock(cpb.SetStockRequest(product_id=reply.product.product_id, on_hand=stock),
                                        metadata=self.seller)
        created: cpb.Product = reply.product
        return created

    async def set_price(self, product_id: str, amount_minor: int, currency: str = "USD") -> cpb.Product:
        reply = await self.catalog.UpdateProduct(cpb.UpdateProductRequest(
            product=cpb.Product(product_id=product_id,
                                price=money_pb2.Money(currency_code=currency, amount_minor=amount_minor)),
            update_mask={"paths": ["price"]}), metadata=self.seller)
        await self.copied(reply.product)
        changed: cpb.Product = reply.product
        return changed

    async def archive(self, product_id: str) -> cpb.Product:
        reply = await self.catalog.ArchiveProduct(cpb.ArchiveProductRequest(product_id=product_id),
                                                  metadata=self.seller)
        await self.copied(reply.product)
        archived: cpb.Product = reply.product
        return archived

    async def add(self, product_id: str, quantity: int = 1, *, who: Metadata | None = None,
                  request_id: str = "") -> pb.Cart:
        reply = await self.cart.AddCartItem(
            pb.AddCartItemRequest(product_id=product_id, quantity=quantity, request_id=request_id),
            metadata=who or self.customer())
        cart: pb.Cart = reply.cart
        return cart

    async def get(self, who: Metadata | None = None) -> pb.Cart:
        cart: pb.Cart = (await self.cart.GetCart(pb.GetCartRequest(), metadata=who or self.customer())).cart
        return cart


def blind(shop: Shop, channel: grpc.aio.Channel) -> Shop:
    """``shop`` seen through the cart replica behind ``channel`` (e.g. ``blind_channel``)."""
    return Shop(shop.tenant, cart_pb2_grpc.CartServiceStub(channel), shop.catalog, shop.keys)


def new_tenant_id() -> str:
    return f"crt-{uuid.uuid4().hex[:10]}"


async def new_shop(cart_channel: grpc.aio.Channel, catalog_channel: grpc.aio.Channel, keys: TestKeys,
                   cart_db: Database | None = None) -> Shop:
    tenant = new_tenant_id()
    await provision(catalog_channel, keys, tenant)
    await provision(cart_channel, keys, tenant)
    return Shop(tenant, cart_pb2_grpc.CartServiceStub(cart_channel),
                catalog_pb2_grpc.CatalogServiceStub(catalog_channel), keys, cart_db)


@pytest.fixture
async def shop(cart_channel: grpc.aio.Channel, catalog_channel: grpc.aio.Channel, cart_keys: TestKeys,
               cart_db: Database) -> Shop:
    return await new_shop(cart_channel, catalog_channel, cart_keys, cart_db)

