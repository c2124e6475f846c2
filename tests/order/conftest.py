"""The checkout mesh in-process on free ports against the session's real
PostgreSQL (and NATS for the outbox relays): catalog (with inventory), cart,
payment (sandbox provider) and order, with tokens from one test key. The order
service calls the others with service tokens minted from that key. Each test
gets its own tenant, provisioned in every service as the tenant service does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from commerce.cart.v1 import cart_pb2, cart_pb2_grpc
from commerce.catalog.v1 import catalog_pb2 as cpb
from commerce.catalog.v1 import catalog_pb2_grpc
from commerce.common.v1 import money_pb2
from commerce.order.v1 import order_pb2 as pb
from commerce.order.v1 import order_pb2_grpc
from commerce.payment.v1 import payment_pb2, payment_pb2_grpc
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc
from sqlalchemy import text

from services.cart.app import MIGRATIONS as CART_MIGRATIONS
from services.cart.app import assemble as assemble_cart
from services.catalog import confirmed_orders
from services.catalog.app import MIGRATIONS as CATALOG_MIGRATIONS
from services.catalog.app import assemble as assemble_catalog
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.order.app import MIGRATIONS as ORDER_MIGRATIONS
from services.order.app import Parts, SagaTuning, shortfall_consumer
from services.order.app import assemble as assemble_order
from services.order.peers import Peers
from services.payment.app import MIGRATIONS as PAYMENT_MIGRATIONS
from services.payment.app import assemble as assemble_payment
from services.runtime.bootstrap import open_database
from services.runtime.db import Database, schema_for
from services.runtime.events import naming
from services.runtime.events.relay import OutboxRelay
from services.runtime.server import Running, create_server
from services.runtime.service_auth import ServiceTokens
from services.runtime.settings import Settings
from tests.conftest import own_nats
from tests.events.harness import connect, read_all
from tests.tokens import TestKeys

Metadata = tuple[tuple[str, str], ...]
TUNING = SagaTuning(lease_seconds=3.0, max_attempts=3, retry_seconds=0.05, recovery_interval_seconds=3600,
                    recovery_idle_seconds=0.0, watch_limit_seconds=30.0)
PEER_DEADLINE_SECONDS = 2.0
OK, DECLINED, INSUFFICIENT, TIMEOUT = ("tok_sandbox_ok", "tok_sandbox_declined", "tok_sandbox_insufficient_funds",
                                       "tok_sandbox_timeout")


@dataclass
class Mesh:
    settings: Settings
    keys: TestKeys
    order_db: Database
    peers: Peers
    parts: Parts
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)


@pytest.fixture(scope="session")
def order_nats(workdir: Path) -> Iterator[Nats]:
    """The order tests' own NATS (the session mesh and tests/cart consume with the same durable names)."""
    yield from own_nats(workdir / "order-nats")


@pytest.fixture(scope="session")
async def mesh(postgres: Postgres, order_nats: Nats) -> AsyncIterator[Mesh]:
    settings = Settings(database_url=postgres.url, nats_url=order_nats.url, database_prefix="ordtest",
                        db_pool_size=5, payment_provider_timeout_seconds=0.5)
    keys = TestKeys()
    running: list[Running] = []

    async def serve(app: object) -> Running:
        r = await create_server(app, "127.0.0.1:0", 0.5)  # type: ignore[arg-type]
        running.append(r)
        return r

    # Every service with its relay and consumers, as in production: the catalog commits a
    # confirmed order's reservation when it consumes OrderConfirmed.
    catalog_db = await open_database(settings, "catalog", CATALOG_MIGRATIONS)
    catalog = await serve(assemble_catalog(catalog_db, keys.verifier(), relay=OutboxRelay(catalog_db, settings),
                                           orders=confirmed_orders.consumer(catalog_db, settings, CATALOG_MIGRATIONS)))
    cart = await serve(assemble_cart(await open_database(settings, "cart", CART_MIGRATIONS), keys.verifier(),
                                     settings, f"127.0.0.1:{catalog.port}"))
    payment_db = await open_database(settings, "payment", PAYMENT_MIGRATIONS)
    payment = await serve(assemble_payment(payment_db, keys.verifier(), settings))

    async def issue() -> str:
        return keys.mint(tenant="platform", roles=["service"], sub="svc-order")

    tokens = ServiceTokens(settings, service="order", issue=issue)
    order_db = await open_database(settings, "order", ORDER_MIGRATIONS)
    peers = Peers.connect({"cart": f"127.0.0.1:{cart.port}", "catalog": f"127.0.0.1:{catalog.port}",
                           "payment": f"127.0.0.1:{payment.port}"}, tokens.metadata, PEER_DEADLINE_SECONDS)
    app, parts = assemble_order(order_db, keys.verifier(), peers, tuning=TUNING, recover_in_background=False,
                                relay=OutboxRelay(order_db, settings),
                                shortfalls=shortfall_consumer(order_db, settings))
    order = await serve(app)
    channels = {name: grpc.aio.insecure_channel(f"127.0.0.1:{r.port}")
                for name, r in (("catalog", catalog), ("cart", cart), ("payment", payment), ("order", order))}
    yield Mesh(settings, keys, order_db, peers, parts, channels)
    for ch in channels.values():
        await ch.close()
    for r in reversed(running):
        await r.stop(0)


@dataclass
class Shop:
    """One tenant provisioned in every service, and its users' tokens."""

    tenant: str
    mesh: Mesh

    @property
    def orders(self) -> order_pb2_grpc.OrderServiceStub:
        return order_pb2_grpc.OrderServiceStub(self.mesh.channels["order"])

    @property
    def catalog(self) -> catalog_pb2_grpc.CatalogServiceStub:
        return catalog_pb2_grpc.CatalogServiceStub(self.mesh.channels["catalog"])

    @property
    def cart(self) -> cart_pb2_grpc.CartServiceStub:
        return cart_pb2_grpc.CartServiceStub(self.mesh.channels["cart"])

    @property
    def payments(self) -> payment_pb2_grpc.PaymentServiceStub:
        return payment_pb2_grpc.PaymentServiceStub(self.mesh.channels["payment"])

    def as_(self, *roles: str, sub: str | None = None) -> Metadata:
        return self.mesh.keys.metadata(tenant=self.tenant, roles=roles, sub=sub)

    @property
    def seller(self) -> Metadata:
        return self.as_("seller", sub="seller-1")

    def customer(self, sub: str = "user-alice") -> Metadata:
        return self.as_("customer", sub=sub)

    async def product(self, *, price: int = 1000, stock: int = 10, weight_grams: int | None = None) -> str:
        attributes = {"weight_grams": str(weight_grams)} if weight_grams is not None else {}
        reply = await self.catalog.CreateProduct(cpb.CreateProductRequest(product=cpb.Product(
            sku=f"SKU-{uuid.uuid4().hex[:10]}", title="Trail shoe", category="shoes", attributes=attributes,
            price=money_pb2.Money(currency_code="USD", amount_minor=price),
            status=cpb.PRODUCT_STATUS_ACTIVE)), metadata=self.seller)
        product_id: str = reply.product.product_id
        if stock:
            await self.catalog.SetStock(cpb.SetStockRequest(product_id=product_id, on_hand=stock),
                                        metadata=self.seller)
        return product_id

    async def stock(self, product_id: str) -> cpb.StockLevel:
        level: cpb.StockLevel = (await self.catalog.GetStock(cpb.GetStockRequest(product_id=product_id),
                                                             metadata=self.seller)).stock
        return level

    async def add(self, who: Metadata, product_id: str, quantity: int = 1) -> None:
        await self.cart.AddCartItem(cart_pb2.AddCartItemRequest(product_id=product_id, quantity=quantity),
                                    metadata=who)

    async def place(self, who: Metadata, *, token: str = OK, request_id: str | None = None,
                    country: str = "US", region: str = "CA") -> pb.Order:
        reply = await self.orders.PlaceOrder(place_request(token=token, request_id=request_id, country=country,
                                                           region=region), metadata=who)
        order: pb.Order = reply.order
        return order

    async def get(self, order_id: str, who: Metadata | None = None) -> pb.Order:
        order: pb.Order = (await self.orders.GetOrder(pb.GetOrderRequest(order_id=order_id),
                                                      metadata=who or self.seller)).order
        return order

    async def payments_of(self, order_id: str) -> Sequence[payment_pb2.Payment]:
        reply = await self.payments.ListPayments(payment_pb2.ListPaymentsRequest(order_id=order_id),
                                                 metadata=self.seller)
        return list(reply.payments)

    @property
    def processing(self) -> payment_pb2_grpc.PaymentProcessingServiceStub:
        return payment_pb2_grpc.PaymentProcessingServiceStub(self.mesh.channels["payment"])

    @property
    def service(self) -> Metadata:
        """A platform service token naming this tenant (what the order service calls peers with)."""
        return (*self.mesh.keys.metadata(tenant="platform", roles=["service"]), ("x-tenant-id", self.tenant))

    async def stock_settles(self, product_id: str, *, on_hand: int, reserved: int, within: float = 10.0) -> None:
        """Until the product's stock is (on_hand, reserved): the catalog commits a confirmed order's
        reservation when it consumes OrderConfirmed, moments after the order is answered."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            level = await self.stock(product_id)
            if (level.on_hand, level.reserved) == (on_hand, reserved):
                return
            assert asyncio.get_running_loop().time() < deadline, (
                f"stock is ({level.on_hand}, {level.reserved}), not ({on_hand}, {reserved})")
            await asyncio.sleep(0.05)

    async def events(self, domain: str = "order") -> list[tuple[str, str]]:
        """(event name, subject) of the tenant's ``domain`` events as published, oldest first:
        once the order outbox has nothing left waiting, what JetStream holds."""
        for _ in range(200):  # 10 s at most
            if not await self.count("outbox"):
                break
            await asyncio.sleep(0.05)
        nc = await connect(self.mesh.settings.nats_url)
        try:
            messages = await read_all(nc, naming.STREAM, f"commerce.{domain}.v1.*.{self.tenant}")
        finally:
            await nc.close()
        return [((m.headers or {})[naming.EVENT_TYPE].rsplit(".", 1)[1], m.subject) for m in messages]

    async def sql(self, statement: str, **params: object) -> None:
        async with self.mesh.order_db.engine.begin() as conn:
            await conn.execute(text(statement.replace("{schema}", schema_for(self.tenant))), params)

    async def count(self, table: str, where: str = "true") -> int:
        async with self.mesh.order_db.engine.connect() as conn:
            return int(await conn.scalar(text(f'SELECT count(*) FROM "{schema_for(self.tenant)}".{table} '
                                              f"WHERE {where}")) or 0)


def place_request(*, token: str = OK, request_id: str | None = None, country: str = "US",
                  region: str = "CA") -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(
        request_id=request_id or str(uuid.uuid4()), payment_token=token, email="alice@example.com",
        shipping_address=pb.Address(recipient="Alice", line1="1 Main St", city="Springfield", region=region,
                                    postal_code="12345", country_code=country))


async def provision(mesh: Mesh, tenant: str) -> None:
    md = mesh.keys.metadata(tenant="platform", roles=["service"])
    for name in ("catalog", "cart", "payment", "order"):  # one at a time: Alembic is not re-entrant
        await provisioning_pb2_grpc.ProvisioningServiceStub(mesh.channels[name]).ProvisionTenant(
            provisioning_pb2.ProvisionTenantRequest(tenant_id=tenant, currency_code="USD"), metadata=md)


@pytest.fixture
async def shop(mesh: Mesh) -> Shop:
    tenant = f"ord-{uuid.uuid4().hex[:10]}"
    await provision(mesh, tenant)
    return Shop(tenant, mesh)


