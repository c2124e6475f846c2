"""Which tenant schemas a loop over every tenant should ask about now.

The relays' poll, the order recovery worker and the catalog's reservation sweeper each
look for work in every tenant schema. Opening a table costs PostgreSQL about a tenth of a
millisecond or more whatever the query, so at 1,000 tenants a pass over all of them every
few seconds costs a good part of a core at rest, even asked in one statement
(``Database.schemas_where``). Instead, each round reads PostgreSQL's statistics of one table
in every schema (one statement over pg_class, no table opened: a few milliseconds for 1,000
schemas) and asks ``schemas_where`` only about the schemas used within
``recent_seconds``: by this process (``Database.used_at``, known at once), or by any
(its insert/update/delete counters moved; statistics lag by up to ~10 s), or, with
``with_rows``, whose table still has rows. Every schema is looked at on the first
round and then every ``full_every_seconds`` all the same (a crash resets the statistics), so
work the statistics do not show is found a minute late at worst. With ``recent_at_start``
every schema counts as used at the first round: work a process that died left in any schema
(a saga whose lease runs out after the restart) is found when it is due, at the price of
looking everywhere for ``recent_seconds`` after a start.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from services.runtime.db import Database

ACTIVITY_SQL = (
    "SELECT n.nspname AS schema, pg_stat_get_tuples_inserted(c.oid) + pg_stat_get_tuples_updated(c.oid) "
    "+ pg_stat_get_tuples_deleted(c.oid) AS writes, pg_stat_get_live_tuples(c.oid) AS live "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relname = $1 AND c.relkind IN ('r', 'p')")
FULL_EVERY_SECONDS = 60.0


class BusySchemas:
    def __init__(self, db: Database, table: str, *, recent_seconds: float,
                 full_every_seconds: float = FULL_EVERY_SECONDS, with_rows: bool = False,
                 recent_at_start: bool = False) -> None:
        self._db = db
        self._table = table
        self._recent = recent_seconds
        self._full_every = full_every_seconds
        self._with_rows = with_rows
        self._recent_at_start = recent_at_start
        self._writes: dict[str, int] = {}
        self._written_at: dict[str, float] = {}
        self._full_at = float("-inf")
        self._counted = False  # the counters were read once

    def look_everywhere(self) -> None:
        """The next round looks at every schema (e.g. NATS is back: rows waited everywhere)."""
        self._full_at = float("-inf")

    async def schemas(self, candidates: Iterable[str]) -> list[str]:
        """The schemas among ``candidates`` to look at in this round, sorted."""
        now = time.monotonic()
        wanted = sorted(candidates)
        pool = await self._db.pool()
        async with pool.acquire() as conn:
            rows = await conn.fetch(ACTIVITY_SQL, self._table)
        waiting = set()
        for row in rows:
            schema, writes = row["schema"], int(row["writes"] or 0)
            seen = self._writes.get(schema)
            if seen != writes:
                self._writes[schema] = writes
                # moved; or new since the first round and written (a new tenant's empty tables are
                # not work); or, with recent_at_start, at the first round
                if (seen is not None or (self._counted and writes > 0)
                        or (self._recent_at_start and not self._counted)):
                    self._written_at[schema] = now
            if self._with_rows and (row["live"] or 0) > 0:
                waiting.add(schema)
        self._counted = True
        if now - self._full_at >= self._full_every:
            self._full_at = now
            return wanted
        used = self._db.used_at
        return [s for s in wanted if s in waiting or now - max(self._written_at.get(s, float("-inf")),
                                                                 used.get(s, float("-inf"))) <= self._recent]
