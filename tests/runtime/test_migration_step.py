"""Migrations as a step of their own (python -m services.migrate, services/runtime/MIGRATIONS.md),
against the tests' real PostgreSQL:

- a service whose role has no DDL rights serves on schemas the migration step (another role)
  brought to the head, and cannot change a schema itself;
- a service started without migrating refuses a schema older than it needs, naming it and the
  step to run; a schema at a revision it does not know (a later release) is served;
- the previous release's catalog (the code of `main`, on `main` the code just before its newest
  migration, or COMMERCE_PREVIOUS_RELEASE) serves on a schema migrated by this code: the
  expand/contract rule holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy.engine import make_url

from services.catalog.app import MIGRATIONS
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.migrate import STEPS
from services.runtime.bootstrap import migrate_database, open_database
from services.runtime.db import Database, plain_url, schema_for
from services.runtime.migrations import SchemaBehind, known_revisions, upgrade_tenant
from services.runtime.settings import Settings
from tests.catalog.conftest import product
from tests.catalog.harness import start_catalog
from tests.conftest import free_port
from tests.edge.harness import upstream_server
from tests.tokens import TestKeys

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def keys() -> TestKeys:
    return TestKeys()


def _prefix() -> str:
    return f"mig{uuid.uuid4().hex[:8]}"


async def _as_superuser(postgres: Postgres, database: str, *statements: str) -> None:
    conn = await asyncpg.connect(plain_url(postgres.url, database))
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def _serves(port: int, keys: TestKeys, tenant: str, sku: str) -> None:
    """The catalog on ``port`` writes and reads the tenant's schema: a product created, read back
    and listed (the tenant has no other)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        seller = keys.metadata(tenant=tenant, roles=["seller"])
        created = (await stub.CreateProduct(pb.CreateProductRequest(product=product(sku)), metadata=seller)).product
        read = await stub.GetProduct(pb.GetProductRequest(product_id=created.product_id), metadata=seller)
        listed = await stub.ListProducts(pb.ListProductsRequest(page_size=10), metadata=seller)
        assert read.product.sku == sku and [p.sku for p in listed.products] == [sku]


async def test_every_service_is_migrated_by_the_step_and_a_second_run_changes_nothing(postgres: Postgres) -> None:
    settings = Settings(database_url=postgres.url, database_prefix=_prefix())
    for service, (scripts, extra) in STEPS.items():
        assert await migrate_database(settings, service, scripts, extra) == 0
        db = Database(postgres.url, settings.database_name(service), 1)
        await upgrade_tenant(db, "acme", scripts)
        await db.dispose()
        assert await migrate_database(settings, service, scripts, extra) == 1  # one tenant schema, at head
        checked = Settings(database_url=postgres.url, database_prefix=settings.database_prefix, migrate_on_start=False)
        opened = await open_database(checked, service, scripts, extra)
        await opened.dispose()


async def test_a_service_without_ddl_rights_serves_on_schemas_the_step_migrated(postgres: Postgres,
                                                                                keys: TestKeys) -> None:
    prefix, role = _prefix(), f"dml_{uuid.uuid4().hex[:8]}"
    ddl = Settings(database_url=postgres.url, database_prefix=prefix)
    database = ddl.database_name("catalog")
    await _as_superuser(postgres, "postgres", f'CREATE ROLE "{role}" LOGIN', f'CREATE DATABASE "{database}"')
    # What deploy/README.md has the operator grant: the DDL role's future schemas and tables
    # are usable by the services' role, nothing more.
    owner = make_url(postgres.url).username
    await _as_superuser(postgres, database,
                        f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC',
                        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" GRANT USAGE ON SCHEMAS TO "{role}"',
                        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" GRANT SELECT, INSERT, UPDATE, DELETE '
                        f'ON TABLES TO "{role}"',
                        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{owner}" GRANT USAGE, SELECT ON SEQUENCES TO "{role}"')
    await migrate_database(ddl, "catalog", MIGRATIONS, {})
    db = Database(postgres.url, database, 1)
    schema, _ = await upgrade_tenant(db, "shop-dml", MIGRATIONS)
    await db.dispose()

    dml_url = make_url(postgres.url).set(username=role).render_as_string(hide_password=False)
    running, _ = await start_catalog(Settings(database_url=dml_url, database_prefix=prefix, migrate_on_start=False),
                                     keys)
    try:
        await _serves(running.port, keys, "shop-dml", "DML-1")
    finally:
        await running.stop(0)
    conn = await asyncpg.connect(dml_url.replace("/postgres", f"/{database}"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(f'ALTER TABLE "{schema}".products ADD COLUMN sneaky text')
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute('CREATE SCHEMA "t_sneaky"')
    finally:
        await conn.close()


async def test_a_schema_older_than_the_code_needs_is_refused_and_a_newer_one_served(postgres: Postgres) -> None:
    settings = Settings(database_url=postgres.url, database_prefix=_prefix())
    await migrate_database(settings, "catalog", MIGRATIONS, {})
    db = Database(postgres.url, settings.database_name("catalog"), 1)
    old, new = schema_for("old-shop"), schema_for("new-shop")
    await upgrade_tenant(db, "old-shop", MIGRATIONS)
    await upgrade_tenant(db, "new-shop", MIGRATIONS)
    await db.dispose()
    head, known = known_revisions(MIGRATIONS)
    older = sorted(known - {head})[0]
    await _as_superuser(postgres, settings.database_name("catalog"),
                        f"UPDATE \"{new}\".alembic_version SET version_num = 'c9999_from_a_later_release'")
    checked = Settings(database_url=postgres.url, database_prefix=settings.database_prefix, migrate_on_start=False)
    served = await open_database(checked, "catalog", MIGRATIONS)  # later release's revision: served
    await served.dispose()

    await _as_superuser(postgres, settings.database_name("catalog"),
                        f"UPDATE \"{old}\".alembic_version SET version_num = '{older}'")
    with pytest.raises(SchemaBehind) as refused:
        await open_database(checked, "catalog", MIGRATIONS)
    message = str(refused.value)
    assert old in message and older in message and head in message
    assert "python -m services.migrate" in message
    assert new not in message


# --- the previous release on the new schema ---------------------------------------------------


def _commit(ref: str) -> str | None:
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=ROOT,
                           capture_output=True, text=True, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def _before_newest_migration() -> str:
    """The first parent of the newest commit that changed a service's migrations (main itself:
    the code that last ran on the schema before it), or HEAD^1 when git cannot tell."""
    newest = subprocess.run(["git", "log", "-1", "--format=%H", "HEAD", "--", "services/*/migrations/versions/*"],
                            cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    return f"{newest}^1" if newest else "HEAD^1"


def _previous_release() -> str:
    """COMMERCE_PREVIOUS_RELEASE, else where this code left main (a branch), else main before
    its newest migration."""
    ref = os.environ.get("COMMERCE_PREVIOUS_RELEASE")
    if not ref:
        head, main = _commit("HEAD"), _commit("main")
        base = subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip() if main else ""
        ref = base if base and base != head else _before_newest_migration()
    commit = _commit(ref)
    if commit is None:
        pytest.skip(f"no git commit {ref!r} to take the previous release from")
    return commit


@pytest.fixture
def previous_code(tmp_path: Path) -> Path:
    commit = _previous_release()
    folder = tmp_path / "previous"
    folder.mkdir()
    archive = subprocess.run(["git", "archive", commit, "services", "gen/python"], cwd=ROOT, capture_output=True,
                             check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    if not (folder / "services" / "migrate").is_dir():
        # Releases before the migration step run Alembic on every schema at start themselves and
        # cannot serve one a later release migrated; the promise starts with the step.
        pytest.skip(f"the previous release ({commit[:10]}) predates the migration step")
    return folder


@pytest.fixture
def jwks(keys: TestKeys) -> Iterator[int]:
    """The tenant service's JWKS, as the previous release's catalog fetches it."""
    port = free_port()
    server = upstream_server(keys, port)
    yield port
    server.stop(0)


def _start(folder: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "services.catalog"], cwd=folder, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def _wait_serving(port: int, process: subprocess.Popen[bytes], log: Path, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the previous release's catalog exited: {log.read_text()[-3000:]}"
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise AssertionError("the previous release's catalog never served")


async def test_the_previous_release_serves_on_a_schema_this_code_migrated(
        postgres: Postgres, nats_server: Nats, keys: TestKeys, previous_code: Path, jwks: int) -> None:
    settings = Settings(database_url=postgres.url, database_prefix=_prefix())
    await migrate_database(settings, "catalog", MIGRATIONS, {})
    db = Database(postgres.url, settings.database_name("catalog"), 1)
    await upgrade_tenant(db, "shop-prev", MIGRATIONS)
    await db.dispose()

    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{previous_code / 'gen' / 'python'}:{previous_code}",
           "DATABASE_URL": postgres.url, "NATS_URL": nats_server.url,
           "COMMERCE_DATABASE_PREFIX": settings.database_prefix, "COMMERCE_CATALOG_PORT": str(port),
           "COMMERCE_TENANT_PORT": str(jwks), "COMMERCE_METRICS_PORT_OFFSET": "0",
           "COMMERCE_MIGRATE_ON_START": "false", "COMMERCE_LOG_LEVEL": "WARNING"}
    log = previous_code / "catalog.log"
    process = await asyncio.to_thread(_start, previous_code, env, log)
    try:
        await asyncio.to_thread(_wait_serving, port, process, log)
        await _serves(port, keys, "shop-prev", "PREV-1")
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 15)
