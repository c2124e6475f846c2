"""Keeps this replica's caches correct: one dedicated asyncpg connection LISTENs on
the channel every product write notifies (payload "<schema>:<id>[,<id>...]"; an
import names up to a few hundred ids at once) and evicts those products, and every
cached search of that tenant. "<schema>:" (no id) is a change of the tenant's search
settings: its searches only. The connection is pinged; when it drops, the caches go
offline (bypassed and emptied) until the listener is connected again."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from services.catalog.cache import ProductCache, SearchCache
from services.catalog.store.products import CHANNEL
from services.runtime.db import tenant_of
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.catalog.cache")
_MAX_RETRY_SECONDS = 5.0


class CacheInvalidator:
    def __init__(self, dsn: str, cache: ProductCache, searches: SearchCache | None = None, *,
                 ping_seconds: float = 1.0, retry_seconds: float = 0.5) -> None:
        self._dsn = dsn
        self._cache = cache
        self._searches = searches or SearchCache(0)
        self._ping_seconds = ping_seconds
        self._retry_seconds = retry_seconds
        self._delay = retry_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog-cache-listener")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self._set_online(False)

    def _set_online(self, online: bool) -> None:
        self._cache.set_online(online)
        self._searches.set_online(online)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        schema, colon, ids = payload.partition(":")
        if payload == "*" or not colon:
            self._cache.clear()
            self._searches.clear()
            return
        tenant_id = tenant_of(schema)
        self._searches.invalidate(tenant_id)
        for product_id in filter(None, ids.split(",")):
            self._cache.evict(tenant_id, product_id)

    async def _run(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._delay == self._retry_seconds:  # once per outage, not on every retry
                    log.warning("cache listener down; reading through to the database", error=str(exc))
            finally:
                self._set_online(False)
            await asyncio.sleep(self._delay)
            self._delay = min(self._delay * 2, _MAX_RETRY_SECONDS)

    def _connected(self) -> None:
        self._set_online(True)
        self._delay = self._retry_seconds
        log.info("cache listener connected")

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=3, server_settings={"application_name": "catalog-cache"})
        lost = asyncio.Event()

        def on_lost(_conn: Any) -> None:
            self._set_online(False)
            lost.set()

        conn.add_termination_listener(on_lost)
        try:
            await conn.add_listener(CHANNEL, self._on_notify)
            self._connected()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._ping_seconds)
                    break
                await conn.fetchval("SELECT 1", timeout=self._ping_seconds)
            raise ConnectionError("listener connection closed")
        finally:
            self._set_online(False)
            conn.terminate()
