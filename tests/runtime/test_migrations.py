"""Per-tenant Alembic migrations against real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, text

from services.devmesh.postgres import Postgres
from services.runtime import db as db_module
from services.runtime import migrations
from services.runtime.db import Database, ensure_database
from services.runtime.migrations import upgrade_tenant

CATALOG_SCRIPTS = Path(__file__).resolve().parents[2] / "services/catalog/migrations"


async def test_many_tenants_provisioned_at_once_in_one_process_all_reach_the_latest_revision(
        postgres: Postgres) -> None:
    await ensure_database(postgres.url, "rt_migrations")
    db = Database(postgres.url, "rt_migrations", pool_size=5)
    try:
        tenants = [f"mig-{i}" for i in range(8)]
        results = await asyncio.gather(*(upgrade_tenant(db, t, CATALOG_SCRIPTS) for t in tenants))
        revisions = {revision for _, revision in results}
        assert len(revisions) == 1 and revisions != {""}
        async with db.engine.connect() as conn:
            for schema, revision in results:
                stored = await conn.scalar(text(f'SELECT version_num FROM "{schema}".alembic_version'))
                assert stored == revision
    finally:
        await db.dispose()


def _upgrade_to(connection: Connection, schema: str, revision: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
    command.upgrade(migrations._config(CATALOG_SCRIPTS, connection, schema), revision)


async def test_start_up_serves_schemas_at_the_latest_revision_at_once_and_migrates_the_others_in_the_background(
        postgres: Postgres) -> None:
    """A restart does not run Alembic per tenant: schemas at the head are ready from a few
    statements; one left behind (an older release) is migrated before it is served, whether a
    request or the background task gets to it first, and health's ``migrations`` says so."""
    await ensure_database(postgres.url, "rt_lazy")
    setup = Database(postgres.url, "rt_lazy", pool_size=2)
    try:
        for tenant in ("lazy-a", "lazy-b"):
            await upgrade_tenant(setup, tenant, CATALOG_SCRIPTS)
        async with setup.engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "t_lazy_old", "c0001")
            await conn.run_sync(_upgrade_to, "t_lazy_older", "c0001")
    finally:
        await setup.dispose()

    db = Database(postgres.url, "rt_lazy", pool_size=2)
    try:
        head = migrations.head_revision(CATALOG_SCRIPTS)
        assert head not in ("", "c0001")
        assert await migrations.check_all(db, CATALOG_SCRIPTS) == (2, 2)
        assert await db.migrations_done() is False
        # a request for a tenant behind gets its schema migrated first
        assert await db.schema_of("lazy-old") == "t_lazy_old"
        async with db.engine.connect() as conn:
            assert await conn.scalar(text('SELECT version_num FROM "t_lazy_old".alembic_version')) == head
        deadline = asyncio.get_running_loop().time() + 30
        while not await db.migrations_done():
            assert asyncio.get_running_loop().time() < deadline, "the background migration never finished"
            await asyncio.sleep(0.05)
        revisions = await migrations.schema_revisions(db)
        assert {revisions[s] for s in ("t_lazy_a", "t_lazy_b", "t_lazy_old", "t_lazy_older")} == {head}
    finally:
        await db.dispose()


async def test_a_schema_whose_migration_keeps_failing_holds_up_no_other(
        postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> None:
    """The background migration tries the pending schemas in order; one that cannot migrate
    (here: always) waits for the next pass instead of being retried before the others."""
    attempts: list[str] = []

    async def migrate(schema: str) -> None:
        attempts.append(schema)
        if schema == "t_broken":
            raise RuntimeError("relation already exists")

    monkeypatch.setattr(db_module, "MIGRATION_RETRY_SECONDS", 0.1)
    db = Database(postgres.url, "rt_failing", pool_size=1)
    try:
        db.migrate_lazily(["t_broken", "t_fine_a", "t_fine_b"], migrate)
        deadline = asyncio.get_running_loop().time() + 10
        while not {"t_fine_a", "t_fine_b"} <= set(attempts):
            assert asyncio.get_running_loop().time() < deadline, attempts
            await asyncio.sleep(0.01)
        assert attempts[:3] == ["t_broken", "t_fine_a", "t_fine_b"]  # one pass, in order
        assert await db.migrations_done() is False  # the broken one is still pending, and said so
        while len(attempts) < 4:  # the next pass, after its pause
            assert asyncio.get_running_loop().time() < deadline, attempts
            await asyncio.sleep(0.01)
        assert attempts[3] == "t_broken"  # the broken one alone: the others are done
    finally:
        await db.dispose()
