"""The outbox relay: publishes each tenant schema's pending outbox rows to JetStream
(header ``Nats-Msg-Id`` = event id, so a row published twice is stored once) and
marks them sent. One relay runs per service process.

It wakes on NOTIFY (``outbox.CHANNEL``, payload = the schema that committed events)
and when NATS (re)connects, and also polls every schema, backing off while there is
nothing to do, so nothing waits forever on a lost notification. While NATS is away
rows stay pending and flow once it is back; start-up never waits for NATS.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from nats.js import JetStreamContext
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.db import Database
from services.runtime.events.connection import NatsConnection
from services.runtime.events.listener import Listener, listener_dsn
from services.runtime.events.outbox import CHANNEL
from services.runtime.events.schema import PENDING, SENT, outbox
from services.runtime.settings import Settings
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.events.relay")
_CLEANUP_BATCH = 5000
PUBLISHED = Counter("commerce_outbox_published_total", "Outbox events published to JetStream", ["database"])
PUBLISH_FAILED = Counter("commerce_outbox_publish_failed_total", "Outbox publish attempts that failed", ["database"])
PENDING_ROWS = Gauge("commerce_outbox_pending", "Outbox events not yet published", ["database"])
LAG = Histogram("commerce_outbox_relay_lag_seconds", "From outbox commit to JetStream ack", ["database"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))


class OutboxRelay:
    def __init__(self, db: Database, settings: Settings, *, batch_size: int = 100,
                 idle_seconds: float = 0.2, max_idle_seconds: float = 1.0, listening_idle_seconds: float = 5.0,
                 publish_timeout: float = 2.0,
                 retention_seconds: float = 86400.0, cleanup_every_seconds: float = 60.0,
                 nats_url: str | None = None, extra_schemas: tuple[str, ...] = ()) -> None:
        """``extra_schemas``: schemas with an outbox besides the tenant schemas (the tenant
        service's ``platform``). Idle polls of every schema back off from ``idle_seconds`` to ``max_idle_seconds``,
        or to ``listening_idle_seconds`` while NOTIFY wakes the relay (and at once when NATS
        comes back). Sent rows are deleted ``retention_seconds`` after they were published (checked
        every ``cleanup_every_seconds``); rows still pending are never deleted."""
        self._db = db
        self._extra_schemas = set(extra_schemas)
        self._batch_size = batch_size
        self._idle_seconds = idle_seconds
        self._max_idle_seconds = max_idle_seconds
        self._listening_idle_seconds = listening_idle_seconds
        self._poll_all = False
        self._publish_timeout = publish_timeout
        self.nats = NatsConnection(nats_url or settings.nats_url, f"{db.database}-relay",
                                   replicas=settings.nats_stream_replicas, on_connected=self._nats_connected)
        self._listener = Listener(listener_dsn(db), CHANNEL, self._notified, name=f"{db.database}-relay")
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._database = db.database
        self._retention = retention_seconds
        self._cleanup_every = cleanup_every_seconds
        self._last_cleanup = time.monotonic()

    async def start(self) -> None:
        await self.nats.start()
        self._listener.start()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._database}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._listener.stop()
        await self.nats.close()

    def _nats_connected(self) -> None:
        self._poll_all = True  # rows that waited for NATS go now
        self._wake.set()

    def _notified(self, schema: str) -> None:
        self._dirty.add(schema)
        self._wake.set()

    async def _run(self) -> None:
        idle = self._idle_seconds
        while True:
            woken = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), idle)
                woken = True
            self._wake.clear()
            if self._poll_all:
                woken, self._poll_all = False, False
            try:
                if woken:
                    schemas, self._dirty = self._dirty, set()
                else:
                    schemas = await self._db.tenant_schemas() | self._extra_schemas
                published = await self._drain(schemas, count_pending=not woken)
                if not woken and time.monotonic() - self._last_cleanup >= self._cleanup_every:
                    self._last_cleanup = time.monotonic()
                    await self._delete_old(schemas)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay round failed")
                published = 0
            longest = self._listening_idle_seconds if self._listener.listening else self._max_idle_seconds
            idle = self._idle_seconds if published or woken else min(idle * 2, longest)

    async def _drain(self, schemas: set[str], *, count_pending: bool) -> int:
        if not schemas:
            return 0
        js = self.nats.js
        total = 0
        pending = 0
        for schema in sorted(schemas):
            while js is not None:
                sent, full = await self._publish_batch(js, schema)
                total += sent
                if not full or not self.nats.connected:
                    break
            if count_pending:
                pending += await self._count_pending(schema)
        if count_pending:
            PENDING_ROWS.labels(self._database).set(pending)
        return total

    async def _count_pending(self, schema: str) -> int:
        try:
            async with self._db.in_schema(schema) as conn:
                return int(await conn.scalar(select(func.count()).select_from(outbox).where(
                    outbox.c.state == PENDING)) or 0)
        except DBAPIError:  # a schema without an outbox (service without events)
            return 0

    async def _delete_old(self, schemas: set[str]) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self._retention)
        old = (select(outbox.c.event_id).where(outbox.c.state == SENT, outbox.c.sent_time < cutoff)
               .limit(_CLEANUP_BATCH).scalar_subquery())
        for schema in sorted(schemas):
            try:
                async with self._db.in_schema(schema) as conn:
                    await conn.execute(delete(outbox).where(outbox.c.event_id.in_(old)))
            except DBAPIError:  # a schema without an outbox
                continue

    async def _publish_batch(self, js: JetStreamContext, schema: str) -> tuple[int, bool]:
        """Publish up to one batch of the schema's pending rows; (published, more may be waiting)."""
        try:
            async with self._db.in_schema(schema) as conn:
                rows = (await conn.execute(
                    select(outbox.c.event_id, outbox.c.subject, outbox.c.payload, outbox.c.headers,
                           outbox.c.create_time)
                    .where(outbox.c.state == PENDING).order_by(outbox.c.position)
                    .limit(self._batch_size).with_for_update(skip_locked=True)
                )).all()
                if not rows:
                    return 0, False
                results = await asyncio.gather(*(
                    js.publish(r.subject, r.payload, timeout=self._publish_timeout, headers=dict(r.headers))
                    for r in rows), return_exceptions=True)
                await self._record(conn, rows, results)
        except DBAPIError as exc:
            if "outbox" in str(exc) and "does not exist" in str(exc):
                return 0, False
            raise
        sent = sum(1 for r in results if not isinstance(r, BaseException))
        # Go on with this schema only after a full batch that all went out (failures wait for the next poll).
        return sent, len(rows) == self._batch_size and sent == len(rows)

    async def _record(self, conn: AsyncConnection, rows: Any, results: list[Any]) -> None:
        now = datetime.now(UTC)
        ok = [r.event_id for r, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
        failed = [(r.event_id, res) for r, res in zip(rows, results, strict=True) if isinstance(res, BaseException)]
        if ok:
            await conn.execute(update(outbox).where(outbox.c.event_id.in_(ok)).values(state=SENT, sent_time=now))
            PUBLISHED.labels(self._database).inc(len(ok))
            wall = time.time()
            for r, res in zip(rows, results, strict=True):
                if not isinstance(res, BaseException):
                    LAG.labels(self._database).observe(max(0.0, wall - r.create_time.timestamp()))
        for event_id, error in failed:
            await conn.execute(update(outbox).where(outbox.c.event_id == event_id).values(
                attempts=outbox.c.attempts + 1, last_error=f"{type(error).__name__}: {error}"[:500]))
        if failed:
            PUBLISH_FAILED.labels(self._database).inc(len(failed))
            log.warning("outbox publish failed; will retry", failed=len(failed), error=str(failed[0][1]))
