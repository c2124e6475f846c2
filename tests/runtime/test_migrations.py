"""Per-tenant Alembic migrations against real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from services.devmesh.postgres import Postgres
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
