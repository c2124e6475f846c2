"""Database access per tenant schema.

Each service owns one database; inside it each tenant has a schema ``t_<id>``.
Two paths reach it, both scoped to one schema, so a query can only ever touch
the schema of the tenant in the caller's token:

- hot statements (``session`` / ``transaction``): asyncpg, statements prepared once,
  table names rendered into the tenant's schema (services/runtime/sql.py);
- cold paths and migrations (``tenant`` / ``tenant_read`` / ``in_schema``): SQLAlchemy
  Core, tables declared without a schema and rendered into the tenant's with
  ``schema_translate_map``.

Outbox rows written on either path are handed to the process's relay after COMMIT.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]
import structlog
from prometheus_client import Gauge
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.runtime.errors import NotFound
from services.runtime.sql import Handoff, Session, Sql, create_pool

if TYPE_CHECKING:
    from services.runtime.events.outbox import OutboxRow

log = structlog.get_logger("commerce.db")
PENDING_MIGRATIONS = Gauge("commerce_schemas_pending_migration",
                           "Tenant schemas behind the latest revision, being migrated in the background", ["database"])
Migrate = Callable[[str], Awaitable[None]]

# Schemas one statement of ``schemas_where`` looks into.
SCHEMAS_PER_STATEMENT = 500
# A background migration that failed is tried again after this, doubling up to the maximum.
MIGRATION_RETRY_SECONDS, MIGRATION_RETRY_MAX_SECONDS = 1.0, 60.0

TENANT_ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{2,31}$")
SCHEMA_PREFIX = "t_"


def schema_for(tenant_id: str) -> str:
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise NotFound("tenant not found", reason="TENANT_NOT_FOUND")
    return SCHEMA_PREFIX + tenant_id.replace("-", "_")


def tenant_of(schema: str) -> str:
    return schema.removeprefix(SCHEMA_PREFIX).replace("_", "-")


def cold_pool_size(pool_size: int) -> int:
    """Connections of the SQLAlchemy pool (cold paths, migrations) beside a request pool of
    ``pool_size``; as many again may overflow."""
    return max(1, pool_size // 4)


def plain_url(url: str, database: str) -> str:
    """``url`` as asyncpg takes it (no SQLAlchemy driver name), for ``database``."""
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


# SQLAlchemy keeps the outbox rows a transaction wrote here (the DBAPI connection's
# info dict) until the transaction ends.
OUTBOX_ROWS = "commerce_outbox_rows"


def async_url(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql+asyncpg")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def ensure_database(server_url: str, database: str) -> None:
    """Create the service's database if it does not exist (safe when raced)."""
    admin = create_async_engine(async_url(server_url), isolation_level="AUTOCOMMIT", pool_size=1)
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database})
            if not exists:
                try:
                    await conn.execute(text(f'CREATE DATABASE "{database}"'))
                except Exception as exc:  # another replica won the race
                    if "already exists" not in str(exc):
                        raise
    finally:
        await admin.dispose()


# Set while a loop over every tenant looks for work (``looking_around``): what it reads is
# not a use of the schema (busy.py would otherwise take every schema for a busy one).
_LOOKING_AROUND: ContextVar[bool] = ContextVar("commerce_looking_around", default=False)


@contextmanager
def looking_around() -> Iterator[None]:
    token = _LOOKING_AROUND.set(True)
    try:
        yield
    finally:
        _LOOKING_AROUND.reset(token)


class Database:
    """The service's engine plus the set of tenant schemas that exist in it."""

    def __init__(self, server_url: str, database: str, pool_size: int = 10, probe_timeout: float = 2.0,
                 listen_url: str | None = None, ddl_url: str | None = None) -> None:
        self.database = database
        self.server_url = server_url
        # Where connections that LISTEN go (the server itself when server_url is a pooler).
        self.listen_url = listen_url or server_url
        self.pool_size = pool_size
        # Cold paths and migrations: a few connections are plenty.
        cold = cold_pool_size(pool_size)
        self.engine: AsyncEngine = create_async_engine(
            async_url(server_url, database), pool_size=cold, max_overflow=cold,
            # A connection the server dropped (a PostgreSQL restart) is replaced before use, not failed.
            pool_pre_ping=True, pool_timeout=5,
            connect_args={"timeout": 3, "server_settings": {"application_name": database}},
        )
        # Schema changes (migrations, a new tenant's schema) as the role that may make them
        # (COMMERCE_MIGRATION_DATABASE_URL); the request paths never use it. Opened on first use.
        self._ddl_url = ddl_url
        self._ddl_engine: AsyncEngine | None = None
        self._pool: asyncpg.Pool | None = None
        self._pool_lock = asyncio.Lock()
        # Health's own connection (ping), apart from the pool.
        self._probe: asyncpg.Connection | None = None
        self.probe_timeout = probe_timeout
        self._schemas: set[str] = set()
        self._schemas_lock = asyncio.Lock()
        self._handoff: Handoff | None = None
        # Schemas behind the latest revision (migrations.check_all), and how to bring one up.
        self._pending: set[str] = set()
        self._migrate: Migrate | None = None
        self._migrating: dict[str, asyncio.Task[None]] = {}
        self._background: asyncio.Task[None] | None = None
        self._pending_gauge = PENDING_MIGRATIONS.labels(database)
        # When this process last used each schema (busy.py: where loops over every tenant look first).
        self.used_at: dict[str, float] = {}

    @property
    def ddl_engine(self) -> AsyncEngine:
        """The engine schema changes run on: the DDL role's, or ``engine`` when none is set."""
        if self._ddl_url is None:
            return self.engine
        if self._ddl_engine is None:
            self._ddl_engine = create_async_engine(
                async_url(self._ddl_url, self.database), pool_size=1, max_overflow=1, pool_timeout=30,
                connect_args={"timeout": 5, "server_settings": {"application_name": f"{self.database}-ddl"}})
        return self._ddl_engine

    # --- hot path (asyncpg) ---------------------------------------------------------------

    async def pool(self) -> asyncpg.Pool:
        """The asyncpg pool of hot statements, opened on first use."""
        if self._pool is None:
            async with self._pool_lock:
                if self._pool is None:
                    self._pool = await create_pool(plain_url(self.server_url, self.database), self.pool_size,
                                                   self.database)
        return self._pool

    def hand_outbox_to(self, handoff: Handoff | None) -> None:
        """Where committed outbox rows go (the process's relay); None: nowhere (they wait
        for a relay's poll)."""
        self._handoff = handoff

    def _committed(self, schema: str, rows: Sequence[OutboxRow]) -> None:
        if rows and self._handoff is not None:
            self._handoff(schema, rows)

    def _used(self, schema: str) -> None:
        if not _LOOKING_AROUND.get():
            self.used_at[schema] = time.monotonic()

    async def schema_of(self, tenant_id: str) -> str:
        """The tenant's schema; NOT_FOUND TENANT_NOT_FOUND when it has none in this database."""
        schema = schema_for(tenant_id)
        if not await self._schema_exists(schema):
            raise NotFound("tenant not found", reason="TENANT_NOT_FOUND")
        return schema

    @asynccontextmanager
    async def session(self, tenant_id: str) -> AsyncIterator[Session]:
        """A pooled connection in the tenant's schema, no transaction: each statement commits
        on its own (reads, and writes that are one statement)."""
        schema = await self.schema_of(tenant_id)
        async with self.session_in(schema, tenant_id) as session:
            yield session

    @asynccontextmanager
    async def transaction(self, tenant_id: str) -> AsyncIterator[Session]:
        """A transaction in the tenant's schema: commits on success, rolls back on error."""
        schema = await self.schema_of(tenant_id)
        async with self.transaction_in(schema, tenant_id) as session:
            yield session

    @asynccontextmanager
    async def session_in(self, schema: str, tenant_id: str = "") -> AsyncIterator[Session]:
        """``session`` in a schema taken as it is (sweeps over every schema, ``platform``)."""
        pool = await self.pool()
        self._used(schema)
        async with pool.acquire() as conn:
            session = Session(conn, schema, tenant_id)
            try:
                yield session
            finally:  # each statement committed on its own: what was written is out
                self._committed(schema, session.events)

    @asynccontextmanager
    async def transaction_in(self, schema: str, tenant_id: str = "") -> AsyncIterator[Session]:
        pool = await self.pool()
        self._used(schema)
        async with pool.acquire() as conn:
            session = Session(conn, schema, tenant_id)
            async with conn.transaction():
                yield session
        self._committed(schema, session.events)

    async def ping(self, limit_seconds: float | None = None) -> bool:
        """Health's probe of the database, on one connection of its own (opened again after any
        failure): never one of the request pool, which load may hold entirely for a while
        without anything being down."""
        limit = self.probe_timeout if limit_seconds is None else limit_seconds
        try:
            async with asyncio.timeout(limit):
                if self._probe is None or self._probe.is_closed():
                    self._probe = await asyncpg.connect(
                        plain_url(self.server_url, self.database), timeout=limit, statement_cache_size=0,
                        server_settings={"application_name": f"{self.database}-health"})
                await self._probe.fetchval("SELECT 1")
            return True
        except Exception:
            self._drop_probe()
            return False

    def _drop_probe(self) -> None:
        if self._probe is not None:
            self._probe.terminate()
            self._probe = None

    # --- schemas ------------------------------------------------------------------------

    async def tenant_schemas(self) -> set[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'"))
            return {r[0] for r in rows}

    async def schemas_where(self, table: str, exists: Sql, schemas: Iterable[str], *args: Any) -> list[str]:
        """The schemas among ``schemas`` that have ``table`` and in which ``exists`` (a ``SELECT FROM
        {schema}...`` whose rows mean "there is work here") finds a row, sorted. Asked in one statement
        per SCHEMAS_PER_STATEMENT schemas, not one per schema. Each schema's table is still opened
        (about 0.2 ms each at 1,000 schemas): the frequent loops over every tenant ask it only about
        the schemas busy.py names."""
        wanted = sorted(schemas)
        if not wanted:
            return []
        found: list[str] = []
        pool = await self.pool()
        async with pool.acquire() as conn:
            having = sorted(r[0] for r in await conn.fetch(
                "SELECT n.nspname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = $1 AND c.relkind IN ('r', 'p') AND n.nspname = ANY($2::text[])", table, wanted))
            for start in range(0, len(having), SCHEMAS_PER_STATEMENT):
                union = " UNION ALL ".join(f"SELECT '{schema}' WHERE EXISTS ({exists.at(schema)})"
                                           for schema in having[start:start + SCHEMAS_PER_STATEMENT])
                found += [r[0] for r in await conn.fetch(union, *args)]
        return found

    async def _schema_exists(self, schema: str) -> bool:
        if schema in self._schemas:
            return True
        if schema in self._pending:
            await self._bring_up(schema)
            return True
        async with self._schemas_lock:
            self._schemas = await self.tenant_schemas() - self._pending
        return schema in self._schemas

    def remember_schema(self, schema: str) -> None:
        self._schemas.add(schema)
        self._pending.discard(schema)
        self._pending_gauge.set(len(self._pending))

    # --- schemas behind the latest revision -------------------------------------------------

    def migrate_lazily(self, schemas: Sequence[str], migrate: Migrate) -> None:
        """``schemas`` are behind the latest revision: each is migrated (``migrate``) before its
        tenant is served, in a background task one after the other, or at once when a request
        for that tenant comes first."""
        self._migrate = migrate
        self._pending |= set(schemas)
        self._pending_gauge.set(len(self._pending))
        if self._pending and (self._background is None or self._background.done()):
            self._background = asyncio.create_task(self._migrate_pending(), name=f"migrate-{self.database}")

    def facets(self) -> dict[str, Callable[[], Awaitable[bool]]]:
        """Health names this database answers beside the service's own (health.py)."""
        return {"migrations": self.migrations_done}

    async def migrations_done(self) -> bool:
        """A health facet: True once no schema waits for its migration."""
        return not self._pending

    async def _migrate_pending(self) -> None:
        """Passes over the pending schemas in order; one that fails (the database went away, or
        its migration cannot apply) waits for the next pass, so it never holds up the others.
        Passes that leave some behind are spaced out, longer each time (up to a minute)."""
        started, total = asyncio.get_running_loop().time(), len(self._pending)
        pause = MIGRATION_RETRY_SECONDS
        while self._pending:
            for schema in sorted(self._pending):
                if schema not in self._pending:  # a request brought it up meanwhile
                    continue
                try:
                    await self._bring_up(schema)
                except Exception as exc:
                    log.warning("background migration failed; it is tried again", schema=schema, error=str(exc),
                                retry_seconds=pause)
            if self._pending:
                await asyncio.sleep(pause)
                pause = min(pause * 2, MIGRATION_RETRY_MAX_SECONDS)
        log.info("every tenant schema migrated", database=self.database, schemas=total,
                 seconds=round(asyncio.get_running_loop().time() - started, 1))

    async def _bring_up(self, schema: str) -> None:
        """Migrates ``schema`` once, whoever asks first (a request, the background task)."""
        task = self._migrating.get(schema)
        if task is None:
            assert self._migrate is not None
            task = asyncio.ensure_future(self._migrate(schema))
            self._migrating[schema] = task
            task.add_done_callback(lambda _: self._migrating.pop(schema, None))
        await asyncio.shield(task)
        self.remember_schema(schema)

    # --- cold paths (SQLAlchemy Core) ------------------------------------------------------

    @asynccontextmanager
    async def in_schema(self, schema: str) -> AsyncIterator[AsyncConnection]:
        """A transaction in ``schema`` taken as it is (no tenant check): for sweeps over every
        schema and for schemas that are not a tenant's."""
        async with self._begin(schema) as conn:
            yield conn

    @asynccontextmanager
    async def tenant(self, tenant_id: str) -> AsyncIterator[AsyncConnection]:
        """A transaction in the tenant's schema: commits on success, rolls back on error."""
        schema = await self.schema_of(tenant_id)
        async with self._begin(schema) as conn:
            yield conn

    @asynccontextmanager
    async def _begin(self, schema: str) -> AsyncIterator[AsyncConnection]:
        rows: list[Any] = []
        self._used(schema)
        async with self.engine.begin() as conn:
            conn.info[OUTBOX_ROWS] = rows  # emit() appends the rows it writes
            try:
                yield await conn.execution_options(schema_translate_map={None: schema})
            finally:
                conn.info.pop(OUTBOX_ROWS, None)
        self._committed(schema, rows)

    @asynccontextmanager
    async def tenant_read(self, tenant_id: str) -> AsyncIterator[AsyncConnection]:
        """A read in the tenant's schema (no explicit transaction block)."""
        schema = await self.schema_of(tenant_id)
        async with self.engine.connect() as conn:
            yield await conn.execution_options(schema_translate_map={None: schema})

    async def dispose(self) -> None:
        if self._background is not None:
            self._background.cancel()
            await asyncio.gather(self._background, return_exceptions=True)
        self._drop_probe()
        if self._ddl_engine is not None:
            await self._ddl_engine.dispose()
            self._ddl_engine = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        await self.engine.dispose()
