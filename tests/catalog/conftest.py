"""The catalog service in-process on a free port, against the session's real
PostgreSQL, with tokens from a test key. Each test gets its own tenant,
provisioned through the ProvisioningService RPC as the tenant service does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc, inventory_pb2, inventory_pb2_grpc
from commerce.common.v1 import money_pb2

from services.devmesh.postgres import Postgres
from services.runtime.db import Database
from services.runtime.server import Running
from services.runtime.settings import Settings
from tests.catalog.harness import Metadata, provision, start_catalog
from tests.tokens import TestKeys


@pytest.fixture(scope="session")
def keys() -> TestKeys:
    return TestKeys()


@pytest.fixture(scope="session")
def catalog_settings(postgres: Postgres) -> Settings:
    return Settings(database_url=postgres.url, database_prefix="cattest", db_pool_size=5)


@pytest.fixture(scope="session")
async def catalog(catalog_settings: Settings, keys: TestKeys) -> AsyncIterator[Running]:
    running, _ = await start_catalog(catalog_settings, keys)
    yield running
    await running.stop(0)


@pytest.fixture(scope="session")
async def catalog_db(catalog: Running, catalog_settings: Settings) -> AsyncIterator[Database]:
    """A separate handle on the catalog's database, for counting rows behind the service's back."""
    db = Database(catalog_settings.database_url, catalog_settings.database_name("catalog"), 2)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
async def channel(catalog: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{catalog.port}") as ch:
        yield ch


@dataclass
class Shop:
    """One tenant of the catalog under test, and tokens of its users."""

    tenant: str
    stub: catalog_pb2_grpc.CatalogServiceStub
    keys: TestKeys

    def as_(self, *roles: str) -> Metadata:
        return self.keys.metadata(tenant=self.tenant, roles=roles)

    @property
    def seller(self) -> Metadata:
        return self.as_("seller")

    @property
    def customer(self) -> Metadata:
        return self.as_("customer")

    async def create(self, sku: str | None = None, *, title: str = "Trail shoe", category: str = "shoes",
                     price: int = 4999, currency: str = "USD", description: str = "",
                     status: int = pb.PRODUCT_STATUS_UNSPECIFIED, request_id: str = "") -> pb.Product:
        reply = await self.stub.CreateProduct(pb.CreateProductRequest(
            product=product(sku or f"SKU-{uuid.uuid4().hex[:10]}", title=title, category=category, price=price,
                            currency=currency, description=description, status=status),
            request_id=request_id), metadata=self.seller)
        created: pb.Product = reply.product
        return created


def product(sku: str, *, title: str = "Trail shoe", category: str = "shoes", price: int = 4999,
            currency: str = "USD", description: str = "", status: int = pb.PRODUCT_STATUS_UNSPECIFIED,
            attributes: dict[str, str] | None = None) -> pb.Product:
    return pb.Product(sku=sku, title=title, category=category, description=description,
                      price=money_pb2.Money(currency_code=currency, amount_minor=price),
                      status=status, attributes=attributes or {})  # type: ignore[arg-type]


def new_tenant_id() -> str:
    return f"cat-{uuid.uuid4().hex[:10]}"


async def new_shop(channel: grpc.aio.Channel, keys: TestKeys) -> Shop:
    tenant = new_tenant_id()
    await provision(channel, keys, tenant)
    return Shop(tenant, catalog_pb2_grpc.CatalogServiceStub(channel), keys)


@pytest.fixture
async def shop(channel: grpc.aio.Channel, keys: TestKeys) -> Shop:
    return await new_shop(channel, keys)


@pytest.fixture
async def other_shop(channel: grpc.aio.Channel, keys: TestKeys) -> Shop:
    return await new_shop(channel, keys)


@dataclass
class Stockroom:
    """A tenant's InventoryService as the order service calls it (a service token)."""

    shop: Shop
    stub: inventory_pb2_grpc.InventoryServiceStub

    @property
    def service(self) -> Metadata:
        return (*self.shop.keys.metadata(tenant="platform", roles=["service"]), ("x-tenant-id", self.shop.tenant))

    async def product(self, on_hand: int, *, status: int = pb.PRODUCT_STATUS_UNSPECIFIED) -> str:
        """A new product with ``on_hand`` units."""
        pid = (await self.shop.create(status=status)).product_id
        if on_hand:
            await self.shop.stub.SetStock(pb.SetStockRequest(product_id=pid, on_hand=on_hand),
                                          metadata=self.shop.seller)
        return pid

    async def reserve(self, reservation_id: str, *lines: tuple[str, int], ttl: int = 0) -> inventory_pb2.Reservation:
        reply = await self.stub.ReserveStock(inventory_pb2.ReserveStockRequest(
            reservation_id=reservation_id, ttl_seconds=ttl,
            lines=[inventory_pb2.ReservationLine(product_id=p, quantity=q) for p, q in lines]), metadata=self.service)
        reservation: inventory_pb2.Reservation = reply.reservation
        return reservation

    async def commit(self, reservation_id: str) -> inventory_pb2.Reservation:
        reply = await self.stub.CommitReservation(
            inventory_pb2.CommitReservationRequest(reservation_id=reservation_id), metadata=self.service)
        reservation: inventory_pb2.Reservation = reply.reservation
        return reservation

    async def release(self, reservation_id: str) -> inventory_pb2.Reservation:
        reply = await self.stub.ReleaseReservation(
            inventory_pb2.ReleaseReservationRequest(reservation_id=reservation_id), metadata=self.service)
        reservation: inventory_pb2.Reservation = reply.reservation
        return reservation

    async def stock(self, product_id: str) -> tuple[int, int, int]:
        """(on_hand, reserved, available) as GetStock reports them."""
        level = (await self.shop.stub.GetStock(pb.GetStockRequest(product_id=product_id),
                                               metadata=self.shop.seller)).stock
        return level.on_hand, level.reserved, level.available


@pytest.fixture
def stockroom(shop: Shop, channel: grpc.aio.Channel) -> Stockroom:
    return Stockroom(shop, inventory_pb2_grpc.InventoryServiceStub(channel))
