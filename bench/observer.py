"""The benchmark's own view of the mesh's PostgreSQL: one connection per database as the
role OBSERVER, opened once and kept for the whole benchmark, so that

- their backends can be left out of PostgreSQL's CPU (``backend_pids``; a backend that
  ended would land in the postmaster's reaped-children time, so none ends early);
- their statements can be left out of pg_stat_statements (by role);
- their transactions can be taken off pg_stat_database (``transactions``: each query here
  runs alone, one transaction each, counted by database).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from bench.harness import OBSERVER, Harness

MESH_DATABASES = r"commerce\_%"
# Transaction control, counted apart from the statements that do work.
_CONTROL = re.compile(
    r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE|PREPARE\s+TRANSACTION)\b",
    re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    database: str
    query: str
    calls: int

    @property
    def control(self) -> bool:
        """BEGIN, COMMIT, ROLLBACK and the like."""
        return bool(_CONTROL.match(self.query))


class Observer:
    def __init__(self, connections: dict[str, Any]) -> None:
        self._conns = connections
        self.transactions: Counter[str] = Counter()
        self.backend_pids: set[int] = set()

    @classmethod
    async def open(cls, harness: Harness) -> Observer:
        admin = await asyncpg.connect(harness.dsn("postgres"))
        names = [r["datname"] for r in await admin.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY datname", MESH_DATABASES)]
        conns = {"postgres": admin}
        for name in names:
            conns[name] = await asyncpg.connect(harness.dsn(name))
        observer = cls(conns)
        for conn in conns.values():
            observer.backend_pids.add(int(await conn.fetchval("SELECT pg_backend_pid()")))
        return observer

    @property
    def databases(self) -> list[str]:
        """The mesh's databases (commerce_*)."""
        return [name for name in self._conns if name != "postgres"]

    async def fetch(self, database: str, query: str, *args: Any) -> list[Any]:
        self.transactions[database] += 1
        return list(await self._conns[database].fetch(query, *args))

    async def fetchval(self, database: str, query: str, *args: Any) -> Any:
        self.transactions[database] += 1
        return await self._conns[database].fetchval(query, *args)

    async def close(self) -> None:
        for conn in self._conns.values():
            await conn.close()

    # -- statistics ------------------------------------------------------------------------------

    async def database_counters(self) -> tuple[dict[str, int], dict[str, int]]:
        """Of each mesh database, as the statistics system has them: transactions (xact_commit +
        xact_rollback) and sessions (connections opened)."""
        rows = await self.fetch("postgres", "SELECT datname, xact_commit + xact_rollback AS n, sessions "
                                "FROM pg_stat_database WHERE datname LIKE $1", MESH_DATABASES)
        return {r["datname"]: int(r["n"]) for r in rows}, {r["datname"]: int(r["sessions"]) for r in rows}

    async def reset_statements(self) -> None:
        await self.fetch("postgres", "SELECT pg_stat_statements_reset()")

    async def statements(self) -> list[Statement]:
        """pg_stat_statements of the mesh's databases, but for OBSERVER's own queries."""
        rows = await self.fetch(
            "postgres", "SELECT d.datname, s.query, s.calls FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid JOIN pg_roles r ON r.oid = s.userid "
            "WHERE d.datname LIKE $1 AND r.rolname <> $2", MESH_DATABASES, OBSERVER)
        return [Statement(r["datname"], r["query"], int(r["calls"])) for r in rows]

    async def inbox_tables(self) -> list[tuple[str, str]]:
        """(database, schema) of every ``inbox`` table of the mesh."""
        found = []
        for database in self.databases:
            rows = await self.fetch(database, "SELECT table_schema FROM information_schema.tables "
                                    "WHERE table_name = 'inbox' ORDER BY table_schema")
            found += [(database, r["table_schema"]) for r in rows]
        return found
