"""The hot data-access path: statements written once, prepared once per connection,
run in the tenant's schema with no round trip to choose it.

    GET = Sql("SELECT status FROM {schema}.orders WHERE order_id = $1")

    async with db.session(tenant_id) as s:          # no transaction: each statement commits
        row = await s.fetchrow(GET, order_id)
    async with db.transaction(tenant_id) as s:      # BEGIN ... COMMIT (ROLLBACK on error)
        ...

``{schema}`` is replaced by the tenant's quoted schema name (checked by
``db.schema_for_tenant``), once per schema: asyncpg then prepares each rendered
text once per connection and reuses the plan (its statement cache), so a hot
statement costs one round trip and no SQL building. SQLAlchemy Core and Alembic
stay for migrations and for paths where speed does not matter.

Events written in a session (``Session.add_events``) are handed to the process's
outbox relay once they are committed: published at once, no outbox scan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import asyncpg  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from services.runtime.events.outbox import OutboxRow

SCHEMA = "{schema}"
# Per connection; a statement is one cache entry per tenant schema it ran in.
STATEMENT_CACHE_SIZE = 2048


class Sql:
    """A statement whose table names are written ``{schema}.table``."""

    __slots__ = ("_rendered", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._rendered: dict[str, str] = {}

    def at(self, schema: str) -> str:
        rendered = self._rendered.get(schema)
        if rendered is None:
            rendered = self._rendered[schema] = self.text.replace(SCHEMA, f'"{schema}"')
        return rendered

    def __repr__(self) -> str:
        return f"Sql({self.text!r})"


Handoff = Callable[[str, Sequence["OutboxRow"]], None]


class Session:
    """One pooled connection in one schema (a tenant's, or ``platform``)."""

    __slots__ = ("conn", "events", "schema", "tenant_id")

    def __init__(self, conn: asyncpg.Connection, schema: str, tenant_id: str) -> None:
        self.conn = conn
        self.schema = schema
        self.tenant_id = tenant_id
        self.events: list[OutboxRow] = []

    async def fetchrow(self, sql: Sql, *args: Any) -> asyncpg.Record | None:
        return await self.conn.fetchrow(sql.at(self.schema), *args)

    async def fetch(self, sql: Sql, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self.conn.fetch(sql.at(self.schema), *args)
        return rows

    async def fetch_planned(self, sql: Sql, *args: Any) -> list[asyncpg.Record]:
        """Like ``fetch``, but planned for these very values every time (an unnamed statement:
        two round trips, never a cached generic plan). For searches, whose best plan depends
        on the values: a word in three products or in most of them, a narrow or a wide filter."""
        statement = await self.conn.prepare(sql.at(self.schema), name=False)
        rows: list[asyncpg.Record] = await statement.fetch(*args)
        return rows

    async def fetchval(self, sql: Sql, *args: Any) -> Any:
        return await self.conn.fetchval(sql.at(self.schema), *args)

    async def execute(self, sql: Sql, *args: Any) -> str:
        status: str = await self.conn.execute(sql.at(self.schema), *args)
        return status

    async def executemany(self, sql: Sql, args: Sequence[Sequence[Any]]) -> None:
        await self.conn.executemany(sql.at(self.schema), args)

    def add_events(self, *rows: OutboxRow) -> None:
        """Outbox rows this session wrote: handed to the relay once committed (in a
        transaction, at COMMIT; without one, when the session ends). Call it only for
        rows a statement really inserted."""
        self.events.extend(rows)


async def _no_reset(_conn: asyncpg.Connection) -> None:
    """Pool connections carry no session state (advisory locks are transaction-scoped,
    listeners use their own connections), so asyncpg's reset query (a round trip on
    every release) is skipped."""


async def create_pool(dsn: str, size: int, application_name: str) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn, min_size=min(2, size), max_size=size, reset=_no_reset, timeout=3,
        statement_cache_size=STATEMENT_CACHE_SIZE, max_inactive_connection_lifetime=300.0,
        server_settings={"application_name": application_name})
    return pool
