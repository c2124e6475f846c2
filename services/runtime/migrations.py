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

With ``migrate_on_start`` (make run, the tests) a service does not run Alembic per schema at
start-up either (that would grow with the tenant count on every restart): ``check_all`` reads
every schema's revision in a few statements (``schema_revisions``), and only schemas behind
the scripts' head are migrated — in the background, and at once when a request for that
tenant comes first (``Database.migrate_lazily``); health's ``migrations`` name says
NOT_SERVING until none is left.
"""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from services.runtime.db import Database, schema_for

log = structlog.get_logger("commerce.migrations")
# Schemas whose revision is read in one statement at start-up.
VERSIONS_PER_STATEMENT = 500


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


@cache
def known_revisions(script_location: Path) -> tuple[str, frozenset[str]]:
    """The scripts' head and every revision they know."""
    scripts = ScriptDirectory.from_config(_config(script_location, None, ""))
    return scripts.get_current_head() or "", frozenset(r.revision for r in scripts.walk_revisions())


def head_revision(script_location: Path) -> str:
    return known_revisions(script_location)[0]


def is_behind(revision: str, script_location: Path) -> bool:
    """A schema at ``revision`` needs migrating for this code: it has none, or one older than the
    head. A revision the scripts do not know was written by a later release (expand/contract:
    this code works there) and is not behind."""
    head, known = known_revisions(script_location)
    return revision != head and (not revision or revision in known)


async def schema_revisions(db: Database) -> dict[str, str]:
    """Every tenant schema and the revision it is at ("" when it has none), in a few statements."""
    return await revisions_of(db, sorted(await db.tenant_schemas()))


async def check_all(db: Database, script_location: Path) -> tuple[int, int]:
    """Start-up: schemas at the scripts' head are ready at once; the others are migrated in the
    background (or first, when a request needs one). Returns (ready, left to migrate)."""
    head = head_revision(script_location)
    revisions = await schema_revisions(db)
    behind = sorted(schema for schema, revision in revisions.items() if is_behind(revision, script_location))
    for schema in revisions.keys() - set(behind):
        db.remember_schema(schema)

    async def migrate(schema: str) -> None:
        await _run_upgrade(db, script_location, schema)

    db.migrate_lazily(behind, migrate)
    if behind:
        log.info("tenant schemas behind the latest revision: migrating them in the background",
                 database=db.database, behind=len(behind), head=head)
    return len(revisions) - len(behind), len(behind)


async def upgrade_all(db: Database, script_location: Path) -> int:
    """The migration step: every existing tenant schema at the latest revision, now."""
    schemas = sorted(await db.tenant_schemas())
    for schema in schemas:
        await _run_upgrade(db, script_location, schema)
        db.remember_schema(schema)
    return len(schemas)


class SchemaBehind(RuntimeError):
    """A schema at an older revision than this code needs: the migration step has not run."""


async def revisions_of(db: Database, schemas: list[str]) -> dict[str, str]:
    """Each of ``schemas``' revision ("" when it has no version table), in a few statements."""
    async with db.engine.connect() as conn:
        versioned = sorted(r[0] for r in await conn.execute(text(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version' "
            "AND table_schema::text = ANY(CAST(:schemas AS text[]))"), {"schemas": schemas}))
        found: dict[str, str] = dict.fromkeys(schemas, "")
        for start in range(0, len(versioned), VERSIONS_PER_STATEMENT):
            chunk = versioned[start:start + VERSIONS_PER_STATEMENT]
            union = " UNION ALL ".join(
                f"(SELECT '{schema}' AS s, version_num AS v FROM \"{schema}\".alembic_version LIMIT 1)"
                for schema in chunk)
            found.update({r.s: r.v for r in await conn.execute(text(union))})
    return found


async def require_current(db: Database, script_location: Path, schemas: list[str] | None = None) -> int:
    """Start-up without migrating: every tenant schema (or ``schemas``) must be at this code's
    head, or at a revision the scripts do not know (newer: written by a later release). A
    schema behind raises SchemaBehind naming it and what to run. Returns the schemas checked."""
    head = head_revision(script_location)
    names = sorted(await db.tenant_schemas()) if schemas is None else schemas
    behind = []
    for schema, revision in (await revisions_of(db, names)).items():
        if not is_behind(revision, script_location):
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
