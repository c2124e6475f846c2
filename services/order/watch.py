"""Order changes as they happen, on every replica: one dedicated asyncpg
connection per process LISTENs on ``order_changes`` (every order write NOTIFYs
"<tenant>:<order_id>" in its transaction) and wakes the WatchOrder streams of
that order. While the listener is down, streams fall back to polling."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog

from services.order.store.checkout import CHANNEL
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.order.watch")


class ChangeFeed:
    def __init__(self, dsn: str, *, retry_seconds: float = 1.0) -> None:
        self._dsn = dsn
        self._retry = retry_seconds
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self.online = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="order-change-feed")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        for event in self._waiters.get(payload, ()):
            event.set()

    async def _run(self) -> None:
        while True:
            try:
                conn = await asyncpg.connect(self._dsn, timeout=3,
                                             server_settings={"application_name": "order-watch"})
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                try:
                    await conn.add_listener(CHANNEL, self._on_notify)
                    self.online = True
                    while not lost.is_set():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(lost.wait(), 1.0)
                            break
                        await conn.fetchval("SELECT 1", timeout=1.0)
                finally:
                    self.online = False
                    conn.terminate()
                    self._wake_all()  # streams re-read, in case a change was missed
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("order change listener down; watchers poll", error=str(exc))
            await asyncio.sleep(self._retry)

    def _wake_all(self) -> None:
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.asynccontextmanager
    async def subscribe(self, tenant_id: str, order_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever the order may have changed (subscribe before the first read)."""
        key = f"{tenant_id}:{order_id}"
        event = asyncio.Event()
        self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[key]
