"""The catalog service in-process on a free port, against the session's real
PostgreSQL, with tokens from a test key. Each test gets its own tenant,
provisioned through the ProvisioningService RPC as the tenant service does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc, inventory_pb2, inventory_pb2_grpc
from commerce.common.v1 import money_pb2
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from sqlalchemy import text

from services.catalog.app import MIGRATIONS, assemble
from services.devmesh.postgres import Postgres
from services.runtime.bootstrap import open_database
from services.runtime.db import Database, schema_for
from services.runtime.server import Running, create_server
from services.runtime.settings import Settings
from tests.tokens import TestKeys

Metadata = tuple[tuple[str, str], ...]


@pytest.fixture(scope="session")
def keys() -> TestKeys:
    return TestKeys()


@pytest.fixture(scope="session")
def catalog_settings(postgres: Postgres) -> Settings:
    return Settings(database_url=postgres.url, database_prefix="cattest", db_pool_size=5)


async def start_catalog(settings: Settings, keys: TestKeys, probe_seconds: float = 0.2) -> tuple[Running, Database]:
    db = await open_database(settings, "catalog", MIGRATIONS)
    running = await create_server(assemble(db, keys.verifier()), "127.0.0.1:0", probe_seconds)
    return running, db


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


async def provision(channel: grpc.aio.Channel, keys: TestKeys, tenant: str) -> None:
    stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
    await stub.ProvisionTenant(provisioning_pb2.ProvisionTenantRequest(tenant_id=tenant, currency_code="USD"),
                               metadata=keys.metadata(tenant="platform", roles=["service"]))


def new_tenant_id() -> str:
    return f"cat-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def shop(channel: grpc.aio.Channel, keys: TestKeys) -> Shop:
    tenant = new_tenant_id()
    await provision(channel, keys, tenant)
    return Shop(tenant, catalog_pb2_grpc.CatalogServiceStub(channel), keys)


@pytest.fixture
async def other_shop(channel: grpc.aio.Channel, keys: TestKeys) -> Shop:
    tenant = new_tenant_id()
    await provision(channel, keys, tenant)
    return Shop(tenant, catalog_pb2_grpc.CatalogServiceStub(channel), keys)


async def count_rows(db: Database, tenant: str, table: str) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(text(f'SELECT count(*) FROM "{schema_for(tenant)}".{table}')) or 0)


def error_details(error: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.BadRequest]:
    """The google.rpc details the interceptor attached to a failed call."""
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    assert raw is not None, f"no rich status on {error.code()}: {error.details()}"
    status = status_pb2.Status.FromString(raw if isinstance(raw, bytes) else raw.encode())
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    detail: any_pb2.Any
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
    return info, bad


def violated_fields(error: grpc.aio.AioRpcError) -> Sequence[str]:
    return [v.field for v in error_details(error)[1].field_violations]


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
