"""Alembic migrations applied per tenant schema.

Each service keeps an Alembic script folder (``services/<name>/migrations``)
whose revisions create tables without a schema; they are run with the
tenant's schema first on the search_path and the version table kept inside
that schema, under an advisory lock so replicas can migrate concurrently.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from services.runtime.db import Database, schema_for


def _config(script_location: Path, connection: Connection, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["connection"] = connection
    cfg.attributes["schema"] = schema
    return cfg


def _upgrade(connection: Connection, script_location: Path, schema: str) -> str:
    connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
    command.upgrade(_config(script_location, connection, schema), "head")
    ctx = MigrationContext.configure(connection, opts={"version_table_schema": schema})
    return ctx.get_current_revision() or ""


# Alembic's `context` is a process-wide proxy: two upgrades running at once in one
# process (e.g. concurrent ProvisionTenant calls) would tear it down under each other.
# Upgrades in a process therefore take turns; across processes the advisory lock rules.
_turns: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


def _turn() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _turns.get(loop)
    if lock is None:
        lock = _turns[loop] = asyncio.Lock()
    return lock


async def _run_upgrade(db: Database, script_location: Path, schema: str) -> str:
    async with _turn():
        async with db.engine.begin() as conn:
            revision: str = await conn.run_sync(_upgrade, script_location, schema)
    return revision


async def upgrade_schema(db: Database, schema: str, script_location: Path) -> str:
    """Create ``schema`` if needed and bring it to the latest revision of the scripts
    in ``script_location``; returns that revision. For schemas that are not a
    tenant's (e.g. the tenant service's ``platform`` schema)."""
    return await _run_upgrade(db, script_location, schema)


async def upgrade_tenant(db: Database, tenant_id: str, script_location: Path) -> tuple[str, str]:
    """Create the tenant's schema if needed and bring it to the latest revision."""
    schema = schema_for(tenant_id)
    revision = await upgrade_schema(db, schema, script_location)
    db.remember_schema(schema)
    return schema, revision


async def upgrade_all(db: Database, script_location: Path) -> int:
    """Bring every existing tenant schema to the latest revision (run at start-up)."""
    schemas = sorted(await db.tenant_schemas())
    for schema in schemas:
        await _run_upgrade(db, script_location, schema)
        db.remember_schema(schema)
    return len(schemas)
