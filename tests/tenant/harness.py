"""Test harness for the tenant service: an in-process tenant server (port 0) and
a catalog-like provisioning target (ProvisioningServicer on its own scratch
database with a throwaway one-table migration folder), both on real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc, tenant_pb2, tenant_pb2_grpc
from sqlalchemy import text

from services.runtime.db import Database, ensure_database
from services.runtime.events import naming
from services.runtime.jwks_client import remote_jwks
from services.runtime.provisioning import ProvisioningServicer
from services.runtime.server import App, Running, create_server
from services.runtime.settings import Settings
from services.runtime.tokens import Jwk, KeySet, TokenVerifier
from services.tenant.app import build, open_platform
from services.tenant.keys import KeyStore
from services.tenant.passwords import Passwords
from tests.conftest import free_port
from tests.errors import reason_of, rich_status, violated_fields
from tests.events.harness import connect, read_all

ADMIN_EMAIL = "root@platform.example"
ADMIN_PASSWORD = "admin-password-123"

_TARGET_ENV = "from services.runtime.alembic_env import run\n\nrun()\n"
_TARGET_REVISION = '''
from alembic import op
import sqlalchemy as sa

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("things", sa.Column("thing_id", sa.Text, primary_key=True))


def downgrade() -> None:
    op.drop_table("things")
'''


def make_settings(postgres_url: str, prefix: str, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=postgres_url, database_prefix=prefix, keys_dir=tmp / "keys", catalog_port=free_port(),
        provision_services=["catalog"], provision_retry_seconds=0.2, keys_reload_seconds=0.2,
        # A new key signs at once here (no edge caches the JWKS); the delay is tested in test_keys.
        keys_activation_seconds=0, metrics_port_offset=0, db_pool_size=4, log_level="WARNING",
    )
    values.update(overrides)
    return Settings(**values)


async def start_tenant(settings: Settings) -> Running:
    return await create_server(await build(settings), "127.0.0.1:0", probe_seconds=0.5)


async def one_slot_tenant(postgres_url: str, nats_url: str, prefix: str, tmp: Path,
                          queue_seconds: float) -> tuple[Running, Client]:
    """A tenant service with a platform admin and one password-hashing slot, and a client of it."""
    settings = make_settings(postgres_url, prefix, tmp, nats_url=nats_url, login_hash_concurrency=1,
                             login_queue_seconds=queue_seconds)
    await add_admin(settings)
    running = await start_tenant(settings)
    return running, Client(running.port)


async def add_admin(settings: Settings, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    platform = await open_platform(settings)
    try:
        await platform.insert_admin(email, "Root", await Passwords().hash(password))
    finally:
        await platform.db.dispose()


@dataclass
class Target:
    """A catalog-like service serving ProvisioningService."""

    running: Running
    db: Database

    async def stop(self) -> None:
        await self.running.stop(0)
        await self.db.dispose()


async def start_target(settings: Settings, tenant_port: int | None, tmp: Path) -> Target:
    """Verifies tokens with the JWKS of the tenant server on ``tenant_port`` (GetJwks), or,
    without one, with the keys in settings.keys_dir."""
    scripts = tmp / "target-migrations"
    if not scripts.exists():
        (scripts / "versions").mkdir(parents=True)
        (scripts / "env.py").write_text(_TARGET_ENV)
        (scripts / "versions" / "c0001_things.py").write_text(_TARGET_REVISION)
    name = settings.database_name("catalog")
    await ensure_database(settings.database_url, name)
    db = Database(settings.database_url, name, 2)
    keys = KeyStore(settings.keys_dir, 0)

    async def local_jwks() -> Sequence[Jwk]:
        return keys.jwks()

    fetch = local_jwks if tenant_port is None else remote_jwks(f"127.0.0.1:{tenant_port}")
    verifier = TokenVerifier(KeySet(fetch), settings.jwt_issuer, settings.jwt_audience)
    servicer = ProvisioningServicer(db, scripts)

    app = App(name="catalog", services=[provisioning_pb2.DESCRIPTOR.services_by_name["ProvisioningService"]],
              register=lambda server: provisioning_pb2_grpc.add_ProvisioningServiceServicer_to_server(servicer, server),
              verifier=verifier, probes={"database": db.ping})
    return Target(await create_server(app, settings.address_of("catalog")), db)


async def schemas_in(settings: Settings, service: str) -> set[str]:
    db = Database(settings.database_url, settings.database_name(service), 1)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(text("SELECT schema_name FROM information_schema.schemata"))
            return {r[0] for r in rows}
    finally:
        await db.dispose()


async def tables_in(settings: Settings, service: str, schema: str) -> set[str]:
    db = Database(settings.database_url, settings.database_name(service), 1)
    try:
        async with db.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema})
            return {r[0] for r in rows}
    finally:
        await db.dispose()


async def count_rows(settings: Settings, sql: str, **params: Any) -> int:
    db = Database(settings.database_url, settings.database_name("tenant"), 1)
    try:
        async with db.engine.connect() as conn:
            return int(await conn.scalar(text(sql), params) or 0)
    finally:
        await db.dispose()


async def published(settings: Settings, subject: str, settle: float = 0.3) -> int:
    """How many events JetStream holds on ``subject`` (published outbox rows are deleted,
    so what was written is counted where it went)."""
    nc = await connect(settings.nats_url)
    try:
        return len(await read_all(nc, naming.STREAM, subject, settle=settle))
    finally:
        await nc.close()


class Client:
    """A TenantService stub bound to one server, with bearer-token helpers."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = tenant_pb2_grpc.TenantServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    async def login(self, tenant_id: str, email: str, password: str) -> str:
        response = await self.stub.Login(tenant_pb2.LoginRequest(tenant_id=tenant_id, email=email, password=password))
        return str(response.access_token)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass
class Failure:
    code: grpc.StatusCode
    reason: str
    fields: list[str]
    message: str


async def failure_of(call: Awaitable[Any]) -> Failure:
    """The status of a call that must fail, with its ErrorInfo reason and BadRequest fields."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        reason, fields = (reason_of(error), violated_fields(error)) if rich_status(error) else ("", [])
        return Failure(error.code(), reason, fields, error.details() or "")
    raise AssertionError("the call succeeded but was expected to fail")


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s")
        await asyncio.sleep(0.1)
