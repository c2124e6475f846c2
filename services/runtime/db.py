"""Database access per tenant schema (SQLAlchemy Core on asyncpg).

Each service owns one database; inside it each tenant has a schema ``t_<id>``.
Tables are declared without a schema and every tenant transaction renders them
qualified with the tenant's schema (``schema_translate_map``), so a query can
only ever touch the schema of the tenant in the caller's token.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from services.runtime.errors import NotFound

TENANT_ID_PATTERN = re.compile(r"^[a-z][a-z0-9-]{2,31}$")
SCHEMA_PREFIX = "t_"


def schema_for(tenant_id: str) -> str:
    if not TENANT_ID_PATTERN.fullmatch(tenant_id):
        raise NotFound("tenant not found", reason="TENANT_NOT_FOUND")
    return SCHEMA_PREFIX + tenant_id.replace("-", "_")


def tenant_of(schema: str) -> str:
    return schema.removeprefix(SCHEMA_PREFIX).replace("_", "-")


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


class Database:
    """The service's engine plus the set of tenant schemas that exist in it."""

    def __init__(self, server_url: str, database: str, pool_size: int = 10) -> None:
        self.database = database
        self.server_url = server_url
        self.engine: AsyncEngine = create_async_engine(
            async_url(server_url, database), pool_size=pool_size, max_overflow=pool_size,
            pool_pre_ping=False, pool_timeout=5,
            connect_args={"timeout": 3, "server_settings": {"application_name": database}},
        )
        self._schemas: set[str] = set()
        self._schemas_lock = asyncio.Lock()

    async def ping(self, limit_seconds: float = 1.0) -> bool:
        try:
            async with asyncio.timeout(limit_seconds):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def tenant_schemas(self) -> set[str]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'"))
            return {r[0] for r in rows}

    async def _schema_exists(self, schema: str) -> bool:
        if schema in self._schemas:
            return True
        async with self._schemas_lock:
            self._schemas = await self.tenant_schemas()
        return schema in self._schemas

    def remember_schema(self, schema: str) -> None:
        self._schemas.add(schema)

    @asynccontextmanager
    async def in_schema(self, schema: str) -> AsyncIterator[AsyncConnection]:
        """A transaction in ``schema`` taken as it is (no tenant check): for sweeps over every
        schema (outbox relay, inbox cleanup) and for schemas that are not a tenant's."""
        async with self.engine.begin() as conn:
            yield await conn.execution_options(schema_translate_map={None: schema})

    @asynccontextmanager
    async def tenant(self, tenant_id: str) -> AsyncIterator[AsyncConnection]:
        """A transaction in the tenant's schema: commits on success, rolls back on error."""
        schema = schema_for(tenant_id)
        if not await self._schema_exists(schema):
            raise NotFound("tenant not found", reason="TENANT_NOT_FOUND")
        async with self.engine.begin() as conn:
            yield await conn.execution_options(schema_translate_map={None: schema})

    @asynccontextmanager
    async def tenant_read(self, tenant_id: str) -> AsyncIterator[AsyncConnection]:
        """A read in the tenant's schema (no explicit transaction block)."""
        schema = schema_for(tenant_id)
        if not await self._schema_exists(schema):
            raise NotFound("tenant not found", reason="TENANT_NOT_FOUND")
        async with self.engine.connect() as conn:
            yield await conn.execution_options(schema_translate_map={None: schema})

    async def dispose(self) -> None:
        await self.engine.dispose()
