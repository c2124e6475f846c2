"""The payment service in-process on a free port, against the session's real
PostgreSQL and NATS, with tokens from a test key. Each test gets its own tenant,
provisioned through the ProvisioningService RPC as the tenant service does."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from commerce.common.v1 import money_pb2
from commerce.payment.v1 import payment_pb2 as pb
from commerce.payment.v1 import payment_pb2_grpc
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc
from nats.aio.msg import Msg
from pydantic import SecretStr
from sqlalchemy import text

from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.payment.app import MIGRATIONS, assemble
from services.payment.domain.payment import Money
from services.payment.providers import sandbox
from services.payment.providers.base import Authorization, Operation, PaymentProvider, authorize_then_capture
from services.runtime.bootstrap import open_database
from services.runtime.db import Database, schema_for
from services.runtime.events import naming
from services.runtime.server import Running, create_server
from services.runtime.settings import Settings
from tests.events.harness import connect, eventually, read_all
from tests.tokens import TestKeys

Metadata = tuple[tuple[str, str], ...]
WEBHOOK_SECRET = "whsec_test_secret"
PROVIDER_DEADLINE = 1.0  # generous: under a loaded machine an ordinary provider call must not time out


@pytest.fixture(scope="session")
def keys() -> TestKeys:
    return TestKeys()


_NATS_URL: list[str] = []  # the session's NATS server, for event_types


@pytest.fixture(scope="session")
def payment_settings(postgres: Postgres, nats_server: Nats) -> Settings:
    _NATS_URL[:] = [nats_server.url]
    return Settings(database_url=postgres.url, nats_url=nats_server.url, database_prefix="paytest",
                    db_pool_size=10, payment_webhook_secret=SecretStr(WEBHOOK_SECRET),
                    payment_provider_timeout_seconds=PROVIDER_DEADLINE)


class RecordedProvider:
    """The sandbox, noting each call (method, idempotency key) before making it; with
    ``two_step`` it has no one-step charge (it authorizes, then captures)."""

    name = sandbox.NAME

    def __init__(self, inner: sandbox.SandboxProvider, calls: list[tuple[str, str]], two_step: bool) -> None:
        self._inner = inner
        self._calls = calls
        self._two_step = two_step

    async def charge(self, idempotency_key: str, amount: Money, token: str) -> Authorization:
        if self._two_step:
            return await authorize_then_capture(self, idempotency_key, amount, token)
        self._calls.append(("charge", idempotency_key))
        return await self._inner.charge(idempotency_key, amount, token)

    async def authorize(self, idempotency_key: str, amount: Money, token: str) -> Authorization:
        self._calls.append(("authorize", idempotency_key))
        return await self._inner.authorize(idempotency_key, amount, token)

    async def capture(self, idempotency_key: str, reference: str, amount: Money) -> Operation:
        self._calls.append(("capture", idempotency_key))
        return await self._inner.capture(idempotency_key, reference, amount)

    async def void(self, idempotency_key: str, reference: str) -> Operation:
        self._calls.append(("void", idempotency_key))
        return await self._inner.void(idempotency_key, reference)

    async def refund(self, idempotency_key: str, reference: str, amount: Money) -> Operation:
        self._calls.append(("refund", idempotency_key))
        return await self._inner.refund(idempotency_key, reference, amount)


class RecordedProviders:
    """The provider factory of the service under test: ``calls[tenant]`` is every call made to
    the tenant's provider, in order; tenants in ``two_step`` get a provider without a one-step charge."""

    def __init__(self, inner: sandbox.SandboxFactory) -> None:
        self._inner = inner
        self.calls: defaultdict[str, list[tuple[str, str]]] = defaultdict(list)
        self.two_step: set[str] = set()

    def __call__(self, tenant_id: str) -> PaymentProvider:
        return RecordedProvider(self._inner(tenant_id), self.calls[tenant_id], tenant_id in self.two_step)


@pytest.fixture(scope="session")
async def providers(payment_settings: Settings) -> AsyncIterator[RecordedProviders]:
    """The provider of the service under test, and the calls the service made to it."""
    # The sandbox's "timeout" token hangs well past the deadline, then the call is abandoned.
    sandbox_db = Database(payment_settings.database_url, payment_settings.database_name("payment"), 5)
    yield RecordedProviders(sandbox.SandboxFactory(sandbox_db, hang_seconds=PROVIDER_DEADLINE * 20))
    await sandbox_db.dispose()


@pytest.fixture(scope="session")
async def payment_service(payment_settings: Settings, keys: TestKeys,
                          providers: RecordedProviders) -> AsyncIterator[Running]:
    db = await open_database(payment_settings, "payment", MIGRATIONS)
    running = await create_server(assemble(db, keys.verifier(), payment_settings, {sandbox.NAME: providers}),
                                  "127.0.0.1:0", 0.2)
    yield running
    await running.stop(0)


@pytest.fixture(scope="session")
async def payment_db(payment_service: Running, payment_settings: Settings) -> AsyncIterator[Database]:
    """A separate handle on the payment database, for looking behind the service's back."""
    db = Database(payment_settings.database_url, payment_settings.database_name("payment"), 2)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
async def channel(payment_service: Running) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{payment_service.port}") as ch:
        yield ch


def money(amount: int, currency: str = "USD") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=amount)


def new_id(prefix: str = "req") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@dataclass
class Shop:
    """One tenant of the payment service under test, and tokens of its callers."""

    tenant: str
    payments: payment_pb2_grpc.PaymentServiceStub
    processing: payment_pb2_grpc.PaymentProcessingServiceStub
    keys: TestKeys

    def as_(self, *roles: str) -> Metadata:
        return self.keys.metadata(tenant=self.tenant, roles=roles)

    @property
    def seller(self) -> Metadata:
        return self.as_("seller")

    @property
    def service(self) -> Metadata:
        """The order service: a platform service token naming this tenant."""
        return (*self.keys.metadata(tenant="platform", roles=["service"]), ("x-tenant-id", self.tenant))

    async def authorize(self, amount: int = 1000, token: str = sandbox.TOKEN_OK, *, order_id: str | None = None,
                        request_id: str | None = None) -> pb.Payment:
        reply = await self.processing.AuthorizePayment(pb.AuthorizePaymentRequest(
            request_id=request_id or new_id(), order_id=order_id or new_id("ord"), amount=money(amount),
            payment_token=token), metadata=self.service)
        payment: pb.Payment = reply.payment
        return payment

    async def capture(self, payment: pb.Payment, amount: int | None = None,
                      request_id: str | None = None) -> pb.Payment:
        request = pb.CapturePaymentRequest(request_id=request_id or new_id(), payment_id=payment.payment_id,
                                           order_id=payment.order_id)
        if amount is not None:
            request.amount.CopyFrom(money(amount))
        reply = await self.processing.CapturePayment(request, metadata=self.service)
        captured: pb.Payment = reply.payment
        return captured

    async def captured(self, amount: int = 1000) -> pb.Payment:
        return await self.capture(await self.authorize(amount))

    async def refund(self, payment_id: str, amount: int | None = None, *, request_id: str | None = None,
                     metadata: Metadata | None = None) -> pb.RefundPaymentResponse:
        request = pb.RefundPaymentRequest(payment_id=payment_id, request_id=request_id or new_id(), reason="test")
        if amount is not None:
            request.amount.CopyFrom(money(amount))
        reply: pb.RefundPaymentResponse = await self.payments.RefundPayment(request, metadata=metadata or self.seller)
        return reply

    async def get(self, payment_id: str) -> pb.Payment:
        reply = await self.payments.GetPayment(pb.GetPaymentRequest(payment_id=payment_id), metadata=self.seller)
        found: pb.Payment = reply.payment
        return found


async def provision(channel: grpc.aio.Channel, keys: TestKeys, tenant: str) -> None:
    stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
    await stub.ProvisionTenant(provisioning_pb2.ProvisionTenantRequest(tenant_id=tenant, currency_code="USD"),
                               metadata=keys.metadata(tenant="platform", roles=["service"]))


async def new_shop(channel: grpc.aio.Channel, keys: TestKeys) -> Shop:
    tenant = f"pay-{uuid.uuid4().hex[:10]}"
    await provision(channel, keys, tenant)
    return Shop(tenant, payment_pb2_grpc.PaymentServiceStub(channel),
                payment_pb2_grpc.PaymentProcessingServiceStub(channel), keys)


@pytest.fixture
async def shop(channel: grpc.aio.Channel, keys: TestKeys) -> Shop:
    return await new_shop(channel, keys)


@pytest.fixture
async def other_shop(channel: grpc.aio.Channel, keys: TestKeys) -> Shop:
    return await new_shop(channel, keys)


async def count_rows(db: Database, tenant: str, table: str, where: str = "true") -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(text(f'SELECT count(*) FROM "{schema_for(tenant)}".{table} WHERE {where}'))
                   or 0)


async def published(db: Database, tenant: str, nats_url: str = "") -> list[Msg]:
    """This tenant's payment events on JetStream, oldest first, once the outbox has nothing
    left waiting (published rows are deleted)."""
    async def drained() -> bool:
        return await count_rows(db, tenant, "outbox") == 0
    await eventually(drained)
    nc = await connect(nats_url or _NATS_URL[0])
    try:
        return await read_all(nc, naming.STREAM, f"commerce.payment.v1.*.{tenant}")
    finally:
        await nc.close()


async def event_types(db: Database, tenant: str, nats_url: str = "") -> list[str]:
    """This tenant's events as published, oldest first, by short name (e.g. "PaymentCaptured")."""
    return [(m.headers or {})[naming.EVENT_TYPE].rsplit(".", 1)[-1] for m in await published(db, tenant, nats_url)]


