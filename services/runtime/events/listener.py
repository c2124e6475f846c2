"""A dedicated asyncpg connection LISTENing on one channel, reconnecting with
back-off while the database is away (like the catalog cache listener)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from services.runtime.db import Database, plain_url
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.events.listener")
_MAX_RETRY_SECONDS = 5.0


def listener_dsn(db: Database) -> str:
    return plain_url(db.listen_url, db.database)


class Listener:
    def __init__(self, dsn: str, channel: str, on_notify: Callable[[str], None], *, name: str,
                 ping_seconds: float = 1.0, retry_seconds: float = 0.5) -> None:
        self._dsn = dsn
        self._channel = channel
        self._on_notify = on_notify
        self._name = name
        self._ping_seconds = ping_seconds
        self._retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self._up = False

    @property
    def listening(self) -> bool:
        return self._up

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"listen-{self._name}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self._on_notify(payload)

    async def _run(self) -> None:
        delay = self._retry_seconds
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._up:  # was connected: a new outage, start the back-off again
                    self._up = False
                    delay = self._retry_seconds
                if delay == self._retry_seconds:  # once per outage
                    log.warning("listener down; polling only", listener=self._name, error=str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY_SECONDS)

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=3, server_settings={"application_name": self._name})
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        try:
            await conn.add_listener(self._channel, self._notified)
            self._up = True
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._ping_seconds)
                    break
                await conn.fetchval("SELECT 1", timeout=self._ping_seconds)
            raise ConnectionError("listener connection closed")
        finally:
            conn.terminate()
