"""Alembic migrations applied per tenant schema.

Each service keeps an Alembic script folder (``services/<name>/migrations``)
whose revisions create tables without a schema; they are run with the
tenant's schema first on the search_path and the version table kept inside
that schema, under an advisory lock so replicas can migrate concurrently.

Schema changes run on ``Database.ddl_engine`` (the role COMMERCE_MIGRATION_DATABASE_URL names).
In a deployment they are a step of their own (``python -m services.migrate``, a Kubernetes
Job / compose one-shot) run before the rollout, and services start with
``migrate_on_start`` off: ``require_current`` refuses a schema at an older revision than this
code's head (``SchemaBehind``), and accepts one at a revision it does not know (a later
release migrated it; the expand/contract rule in services/runtime/MIGRATIONS.md keeps this
code working there).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from services.runtime.db import Database, schema_for


def _config(script_location: Path, connection: Connection | None, schema: str) -> Config:
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
        async with db.ddl_engine.begin() as conn:
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


class SchemaBehind(RuntimeError):
    """A schema at an older revision than this code needs: the migration step has not run."""


def known_revisions(script_location: Path) -> tuple[str, set[str]]:
    """The scripts' head and every revision they know."""
    scripts = ScriptDirectory.from_config(_config(script_location, None, ""))
    return scripts.get_current_head() or "", {r.revision for r in scripts.walk_revisions()}


async def revisions_of(db: Database, schemas: list[str]) -> dict[str, str]:
    """Each schema's revision ("" when it has no version table)."""
    found: dict[str, str] = {}
    async with db.engine.connect() as conn:
        versioned = {r[0] for r in await conn.execute(text(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'"))}
        for schema in schemas:
            found[schema] = "" if schema not in versioned else str(
                await conn.scalar(text(f'SELECT version_num FROM "{schema}".alembic_version LIMIT 1')) or "")
    return found


async def require_current(db: Database, script_location: Path, schemas: list[str] | None = None) -> int:
    """Start-up without migrating: every tenant schema (or ``schemas``) must be at this code's
    head, or at a revision the scripts do not know (newer: written by a later release). A
    schema behind raises SchemaBehind naming it and what to run. Returns the schemas checked."""
    head, known = known_revisions(script_location)
    names = sorted(await db.tenant_schemas()) if schemas is None else schemas
    behind = []
    for schema, revision in (await revisions_of(db, names)).items():
        if revision == head or (revision and revision not in known):
            if schemas is None:
                db.remember_schema(schema)
            continue
        behind.append(f"{schema} at {revision or 'no revision'}")
    if behind:
        raise SchemaBehind(
            f"database {db.database}: {len(behind)} schema(s) older than this release needs (head {head}): "
            f"{', '.join(behind[:5])}{' ...' if len(behind) > 5 else ''}. Run the migration step first: "
            "python -m services.migrate (the Kubernetes Job `migrate`, the compose service `migrate`).")
    return len(names)
