"""The tenant's search language (Get/UpdateSearchSettings) and the re-indexing a
change of it starts (as does migration c0005, to give every product its attribute_pairs).

Re-indexing runs in the background of the replica that took the change, a batch per
transaction (store/search_settings.py), and is picked up again by every replica at
start (a replica that stopped half-way left ``reindex_after`` behind). Replicas that
work on the same tenant take turns batch by batch.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from services.catalog.cache import SearchCache
from services.catalog.store import search_settings as store
from services.catalog.store.search_settings import Settings
from services.runtime.db import Database, looking_around, tenant_of
from services.runtime.errors import InvalidArgument
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.catalog.search")
REINDEX_BATCH = 2000
RETRY_SECONDS = 60.0  # a re-indexing that failed here is not resumed by searches before this


class SearchLanguages:
    def __init__(self, db: Database, searches: SearchCache, batch: int = REINDEX_BATCH) -> None:
        self._db = db
        self._searches = searches
        self._batch = batch
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._failed: dict[str, float] = {}  # tenant -> when its re-indexing last failed here (monotonic)
        self._resume: asyncio.Task[None] | None = None

    async def get(self, tenant_id: str) -> tuple[Settings, list[str]]:
        async with self._db.session(tenant_id) as session:
            return await store.get(session), await store.languages(session)

    async def update(self, tenant_id: str, language: str) -> tuple[Settings, list[str]]:
        async with self._db.session(tenant_id) as session:
            available = await store.languages(session)
        if language not in available:
            raise InvalidArgument.field("settings.language", f"must be one of {', '.join(available)}")
        async with self._db.transaction(tenant_id) as session:
            changed = await store.set_language(session, language)
        if changed:
            self._searches.invalidate(tenant_id)
            self.reindex(tenant_id)
        return await self.get(tenant_id)

    def reindex(self, tenant_id: str) -> None:
        """Starts re-indexing the tenant's products in the background, unless it runs here already."""
        running = self._tasks.get(tenant_id)
        if running is None or running.done():
            self._tasks[tenant_id] = asyncio.create_task(self._reindex(tenant_id), name=f"reindex-{tenant_id}")

    def resume(self, tenant_id: str) -> None:
        """Like ``reindex``, for a search that found the tenant's re-indexing unfinished (it may
        run on another replica, or have been left by a migration after this one started), but
        not again within RETRY_SECONDS of a failure here: searches come many a second."""
        failed = self._failed.get(tenant_id)
        if failed is None or time.monotonic() - failed >= RETRY_SECONDS:
            self.reindex(tenant_id)

    async def _reindex(self, tenant_id: str) -> None:
        try:
            while True:
                async with self._db.transaction(tenant_id) as session:
                    more = await store.reindex_batch(session, self._batch)
                self._searches.invalidate(tenant_id)
                if not more:
                    log.info("search index rebuilt", tenant=tenant_id)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # picked up again at the next start, or by a search (resume)
            self._failed[tenant_id] = time.monotonic()
            log.warning("re-indexing stopped; it resumes at the next start, or at a search a minute from now",
                        tenant=tenant_id, error=str(exc))

    async def start(self) -> None:
        self._resume = asyncio.create_task(self._resume_unfinished(), name="reindex-resume")

    async def _resume_unfinished(self) -> None:
        try:
            unfinished = []
            with looking_around():  # reading every tenant's settings is not a use of its schema
                for schema in sorted(await self._db.tenant_schemas()):
                    async with self._db.session_in(schema) as session:
                        if (await store.get(session)).reindexing:
                            unfinished.append(tenant_of(schema))
            for tenant_id in unfinished:
                self.reindex(tenant_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("could not look for unfinished re-indexing", error=str(exc))

    async def stop(self) -> None:
        await cancel_and_wait(self._resume, *self._tasks.values())
        self._tasks.clear()
