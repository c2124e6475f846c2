"""The cart service and the catalog it prices from, both in-process on free
ports against the session's real PostgreSQL, with tokens from a test key. Each
test gets its own tenant, provisioned in both services as the tenant service does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from commerce.cart.v1 import cart_pb2 as pb
from commerce.cart.v1 import cart_pb2_grpc
from commerce.catalog.v1 import catalog_pb2 as cpb
from commerce.catalog.v1 import catalog_pb2_grpc
from commerce.common.v1 import money_pb2

from services.cart.app import MIGRATIONS
from services.cart.app import assemble as assemble_cart
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.bootstrap import open_database
from services.runtime.db import Database
from services.runtime.server import Running, create_server
from services.runtime.settings import Settings
from tests.catalog.harness import Metadata, provision, start_catalog
from tests.tokens import TestKeys


@pytest.fixture(scope="session")
def cart_keys() -> TestKeys:
    return TestKeys()


@pytest.fixture(scope="session")
def cart_settings(postgres: Postgres, nats_server: Nats) -> Settings:
    return Settings(database_url=postgres.url, nats_url=nats_server.url, database_prefix="carttest", db_pool_size=5)


@pytest.fixture(scope="session")
async def catalog_server(cart_settings: Settings, cart_keys: TestKeys) -> AsyncIterator[Running]:
    running, _ = await start_catalog(cart_settings, cart_keys)
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


@pytest.fixture(scope="session")
async def catalog_channel(catalog_server: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{catalog_server.port}") as ch:
        yield ch


@dataclass
class Shop:
    """One tenant provisioned in the catalog and the cart, and tokens of its users."""

    tenant: str
    cart: cart_pb2_grpc.CartServiceStub
    catalog: catalog_pb2_grpc.CatalogServiceStub
    keys: TestKeys

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
                      title: str = "Trail shoe") -> cpb.Product:
        """An active product with ``stock`` units on hand."""
        reply = await self.catalog.CreateProduct(cpb.CreateProductRequest(product=cpb.Product(
            sku=f"SKU-{uuid.uuid4().hex[:10]}", title=title, category="shoes",
            price=money_pb2.Money(currency_code=currency, amount_minor=price))), metadata=self.seller)
        if stock:
            await self.catalog.SetStock(cpb.SetStockRequest(product_id=reply.product.product_id, on_hand=stock),
                                        metadata=self.seller)
        created: cpb.Product = reply.product
        return created

    async def set_price(self, product_id: str, amount_minor: int, currency: str = "USD") -> None:
        await self.catalog.UpdateProduct(cpb.UpdateProductRequest(
            product=cpb.Product(product_id=product_id,
                                price=money_pb2.Money(currency_code=currency, amount_minor=amount_minor)),
            update_mask={"paths": ["price"]}), metadata=self.seller)

    async def archive(self, product_id: str) -> None:
        await self.catalog.ArchiveProduct(cpb.ArchiveProductRequest(product_id=product_id), metadata=self.seller)

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


def new_tenant_id() -> str:
    return f"crt-{uuid.uuid4().hex[:10]}"


async def new_shop(cart_channel: grpc.aio.Channel, catalog_channel: grpc.aio.Channel, keys: TestKeys) -> Shop:
    tenant = new_tenant_id()
    await provision(catalog_channel, keys, tenant)
    await provision(cart_channel, keys, tenant)
    return Shop(tenant, cart_pb2_grpc.CartServiceStub(cart_channel),
                catalog_pb2_grpc.CatalogServiceStub(catalog_channel), keys)


@pytest.fixture
async def shop(cart_channel: grpc.aio.Channel, catalog_channel: grpc.aio.Channel, cart_keys: TestKeys) -> Shop:
    return await new_shop(cart_channel, catalog_channel, cart_keys)

