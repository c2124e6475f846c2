"""Which tenant schemas the loops over every tenant (relay poll, recovery, sweeper) look at:
every one on the first round and each minute; in between only those used lately, by this process
or (from PostgreSQL's statistics) by any, and those whose table still has rows; with
recent_at_start, every one for a while after a start."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]

from services.devmesh.postgres import Postgres
from services.runtime.busy import BusySchemas
from services.runtime.db import Database, ensure_database, looking_around, plain_url
from services.runtime.sql import Sql

SCHEMAS = ["t_busy_a", "t_busy_b", "t_busy_c", "t_busy_d"]  # t_busy_e: a tenant created later
INSERT = Sql("INSERT INTO {schema}.things VALUES (1)")
DELETE = Sql("DELETE FROM {schema}.things")
FLUSH_STATISTICS = Sql("SELECT pg_stat_force_next_flush()")  # then any statement: seen by everyone at once
RECENT_S = 1.5


async def _tables(postgres: Postgres, database: str) -> asyncpg.Connection:
    await ensure_database(postgres.url, database)
    other = await asyncpg.connect(plain_url(postgres.url, database))  # another process of the mesh
    for schema in SCHEMAS:
        await other.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}; DROP TABLE IF EXISTS {schema}.things; "
                            f"CREATE TABLE {schema}.things (n int)")
    return other


async def _written_by(other: asyncpg.Connection, schema: str) -> None:
    await other.execute(f"INSERT INTO {schema}.things VALUES (1); SELECT pg_stat_force_next_flush()")
    await other.execute("SELECT 1")  # its statistics flushed


async def test_after_the_first_round_only_schemas_used_lately_or_holding_rows_are_looked_at(
        postgres: Postgres) -> None:
    other = await _tables(postgres, "rt_busy")
    db = Database(postgres.url, "rt_busy", pool_size=2)
    try:
        busy = BusySchemas(db, "things", recent_seconds=RECENT_S, with_rows=True)
        assert await busy.schemas(SCHEMAS) == SCHEMAS  # the first round: everywhere
        assert await busy.schemas(SCHEMAS) == []
        await other.execute("CREATE SCHEMA IF NOT EXISTS t_busy_e; DROP TABLE IF EXISTS t_busy_e.things; "
                            "CREATE TABLE t_busy_e.things (n int)")
        assert await busy.schemas([*SCHEMAS, "t_busy_e"]) == []  # a new tenant's empty table is no work

        async with db.session_in("t_busy_b") as session:  # this process wrote there
            await session.execute(INSERT)
            await session.execute(DELETE)
            await session.execute(FLUSH_STATISTICS)
            await session.execute(FLUSH_STATISTICS)
        with looking_around():  # a loop looking for work is no use
            async with db.session_in("t_busy_c") as session:
                await session.execute(DELETE)
                await session.execute(FLUSH_STATISTICS)
                await session.execute(FLUSH_STATISTICS)
        await _written_by(other, "t_busy_d")  # another process wrote there (and left a row)
        assert await busy.schemas(SCHEMAS) == ["t_busy_b", "t_busy_d"]

        await asyncio.sleep(RECENT_S + 0.2)
        assert await busy.schemas(SCHEMAS) == ["t_busy_d"]  # no longer recent, but its row waits

        busy.look_everywhere()
        assert await busy.schemas(SCHEMAS) == SCHEMAS
        assert await busy.schemas(SCHEMAS) == ["t_busy_d"]
    finally:
        await other.close()
        await db.dispose()


async def test_recent_at_start_looks_everywhere_until_recent_seconds_after_the_first_round(
        postgres: Postgres) -> None:
    other = await _tables(postgres, "rt_busy_start")
    db = Database(postgres.url, "rt_busy_start", pool_size=2)
    try:
        await _written_by(other, "t_busy_a")  # before this process started (a saga a dead process left)
        busy = BusySchemas(db, "things", recent_seconds=RECENT_S, recent_at_start=True)
        assert await busy.schemas(SCHEMAS) == SCHEMAS
        assert await busy.schemas(SCHEMAS) == SCHEMAS  # still: whatever was left may fall due now
        await asyncio.sleep(RECENT_S + 0.2)
        assert await busy.schemas(SCHEMAS) == []
        await _written_by(other, "t_busy_c")
        assert await busy.schemas(SCHEMAS) == ["t_busy_c"]
    finally:
        await other.close()
        await db.dispose()
