"""The outbox relay: publishes outbox rows to JetStream (header ``Nats-Msg-Id`` = event
id, so a row published twice is stored once) and deletes them once acknowledged.
One relay runs per service process.

- **Hand-off** (the normal path): the process's own writes give the relay their rows
  once committed (``Database.hand_outbox_to``). It publishes them in batches with
  asynchronous acks and deletes the acknowledged rows of each schema together, one
  statement at most every ``DELETE_EVERY_SECONDS``: no outbox scan, no NOTIFY.
- **Poll** (what nobody handed off: another process died after its commit, NATS was
  away, a publish failed): every ``poll_seconds`` (backing off to ``max_poll_seconds``
  while there is nothing) and at once when NATS (re)connects, one statement finds, among the
  schemas that have rows or were written lately (busy.py; every schema at (re)connect and
  each minute), those with pending rows older than ``min_age_seconds`` (younger ones are
  still being handed off); their rows are read oldest first (``FOR UPDATE SKIP LOCKED``, so
  replicas share them), published, deleted.

Published rows are deleted, so the pending index stays as small as the rows in flight
and the relay's cost stays flat as history grows. Rows marked ``sent`` by earlier
versions are deleted ``retention_seconds`` after they were sent. Start-up never waits
for NATS; while it is away rows wait in the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict, deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import structlog
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import Counter, Gauge, Histogram

from services.runtime import telemetry
from services.runtime.busy import BusySchemas
from services.runtime.db import Database, looking_around
from services.runtime.events import naming
from services.runtime.events.connection import NatsAuth, NatsConnection
from services.runtime.events.outbox import OutboxRow
from services.runtime.events.schema import PENDING, SENT
from services.runtime.settings import Settings
from services.runtime.sql import Sql
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.events.relay")
PUBLISHED = Counter("commerce_outbox_published_total", "Outbox events published to JetStream", ["database"])
PUBLISH_FAILED = Counter("commerce_outbox_publish_failed_total", "Outbox publish attempts that failed", ["database"])
PENDING_ROWS = Gauge("commerce_outbox_pending", "Outbox events handed to this relay and not yet published",
                     ["database"])
# Measured every BACKLOG_EVERY_SECONDS from the tables (what waits for NATS or for a dead process too).
BACKLOG = Gauge("commerce_outbox_backlog", "Unpublished rows in the outbox tables of this database", ["database"])
BACKLOG_AGE = Gauge("commerce_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row (0: none)",
                    ["database"])
DLQ_DEPTH = Gauge("commerce_dlq_messages", "Messages in the dead-letter stream (COMMERCE_DLQ), as this process sees it")
LAG = Histogram("commerce_outbox_relay_lag_seconds", "From outbox commit to JetStream ack", ["database"],
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

DELETE_EVERY_SECONDS = 0.05
BACKLOG_EVERY_SECONDS = 15.0
BACKLOG_SQL = Sql(f"SELECT count(*), extract(epoch FROM now() - min(create_time)) FROM {{schema}}.outbox "
                  f"WHERE state = '{PENDING}'")
DELETE_SQL = Sql("DELETE FROM {schema}.outbox WHERE event_id = ANY($1::text[])")
PENDING_SQL = Sql(
    "SELECT event_id, subject, event_type, payload, headers, create_time FROM {schema}.outbox "
    f"WHERE state = '{PENDING}' AND create_time < now() - make_interval(secs => $1) "
    "ORDER BY position LIMIT $2 FOR UPDATE SKIP LOCKED")
FAILED_SQL = Sql("UPDATE {schema}.outbox SET attempts = attempts + 1, last_error = $2 WHERE event_id = ANY($1::text[])")
# Which schemas have rows to poll (asked in one statement: Database.schemas_where).
WAITING_SQL = Sql(f"SELECT FROM {{schema}}.outbox WHERE state = '{PENDING}' "
                  "AND create_time < now() - make_interval(secs => $1)")
# Which schemas have sent rows past their retention (once a minute, for Database.schemas_where).
OLD_SENT_EXISTS_SQL = Sql(f"SELECT FROM {{schema}}.outbox WHERE state = '{SENT}' AND sent_time < $1")
OLD_SENT_SQL = Sql(
    "DELETE FROM {schema}.outbox WHERE event_id IN (SELECT event_id FROM {schema}.outbox "
    f"WHERE state = '{SENT}' AND sent_time < $1 LIMIT 5000)")


class OutboxRelay:
    def __init__(self, db: Database, settings: Settings, *, batch_size: int = 256,
                 poll_seconds: float = 0.5, max_poll_seconds: float = 5.0, min_age_seconds: float = 2.0,
                 publish_timeout: float = 2.0, max_handed_off: int = 50_000,
                 retention_seconds: float = 86400.0, cleanup_every_seconds: float = 60.0,
                 nats_url: str | None = None, extra_schemas: tuple[str, ...] = ()) -> None:
        """``extra_schemas``: schemas with an outbox besides the tenant schemas (the tenant
        service's ``platform``). Rows handed off beyond ``max_handed_off`` waiting are left
        to the poll (bounded memory while NATS is slow)."""
        self._db = db
        self._extra_schemas = set(extra_schemas)
        self._batch_size = batch_size
        self._poll_seconds = poll_seconds
        self._max_poll_seconds = max_poll_seconds
        self._min_age = min_age_seconds
        self._publish_timeout = publish_timeout
        self._max_handed_off = max_handed_off
        self.nats = NatsConnection(nats_url or settings.nats_url, f"{db.database}-relay",
                                   replicas=settings.nats_stream_replicas, on_connected=self._nats_connected,
                                   auth=NatsAuth.of(settings))
        self._handed: deque[tuple[str, OutboxRow]] = deque()
        self._wake = asyncio.Event()
        self._poll_now = False
        self._task: asyncio.Task[None] | None = None
        self._measuring: asyncio.Task[None] | None = None
        self._database = db.database
        self._retention = retention_seconds
        self._cleanup_every = cleanup_every_seconds
        self._last_cleanup = time.monotonic()
        self._pending = PENDING_ROWS.labels(db.database)
        # Published rows are deleted together, at most DELETE_EVERY_SECONDS after the first.
        self._delete_every = DELETE_EVERY_SECONDS
        self._published: defaultdict[str, list[str]] = defaultdict(list)
        self._published_count = 0
        self._published_since: float | None = None
        # The schemas with rows waiting, or written lately; every schema each minute.
        self._busy = BusySchemas(db, "outbox", recent_seconds=30.0, with_rows=True)

    async def start(self) -> None:
        self._db.hand_outbox_to(self.handoff)
        await self.nats.start()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self._database}")
        self._measuring = asyncio.create_task(self._measure(), name=f"outbox-backlog-{self._database}")

    async def stop(self) -> None:
        self._db.hand_outbox_to(None)
        await cancel_and_wait(self._task, self._measuring)
        self._task = self._measuring = None
        with contextlib.suppress(Exception):  # else the poll publishes them again (stored once)
            await self._delete_published()
        await self.nats.close()

    def handoff(self, schema: str, rows: Sequence[OutboxRow]) -> None:
        """Committed rows of ``schema`` to publish now (called after COMMIT)."""
        if len(self._handed) + len(rows) > self._max_handed_off:
            return  # the poll finds them
        self._handed.extend((schema, row) for row in rows)
        self._pending.set(len(self._handed))
        self._wake.set()

    def _nats_connected(self) -> None:
        self._poll_now = True  # rows that waited for NATS go now, from every schema
        self._busy.look_everywhere()
        self._wake.set()

    async def _run(self) -> None:
        poll_every = self._poll_seconds
        next_poll = time.monotonic()
        while True:
            wake_at = next_poll if self._published_since is None else min(
                next_poll, self._published_since + self._delete_every)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, wake_at - time.monotonic()))
            self._wake.clear()
            try:
                while self._handed and self.nats.connected:
                    await self._publish_handed()
                if self._published_since is not None and (
                        self._published_count >= self._batch_size
                        or time.monotonic() - self._published_since >= self._delete_every):
                    await self._delete_published()
                if self._poll_now or time.monotonic() >= next_poll:
                    self._poll_now = False
                    found = await self._poll()
                    poll_every = self._poll_seconds if found else min(poll_every * 2, self._max_poll_seconds)
                    next_poll = time.monotonic() + poll_every
                    if time.monotonic() - self._last_cleanup >= self._cleanup_every:
                        self._last_cleanup = time.monotonic()
                        await self._delete_old_sent()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay round failed")
                await asyncio.sleep(self._poll_seconds)
            if not self.nats.connected:
                self._handed.clear()  # they wait in the outbox; the poll after reconnecting sends them
            self._pending.set(len(self._handed))

    async def _measure(self) -> None:
        """The outbox backlog and its oldest row's age, and the dead-letter stream's depth."""
        backlog, age = BACKLOG.labels(self._database), BACKLOG_AGE.labels(self._database)
        while True:
            try:
                rows, oldest = 0, 0.0
                for schema in await self._schemas():
                    # looking_around: measuring is not using; else every schema would count as busy
                    # (services/runtime/busy.py) and the loops over every tenant would look everywhere
                    with contextlib.suppress(asyncpg.UndefinedTableError), looking_around():
                        async with self._db.session_in(schema) as session:
                            found = await session.fetchrow(BACKLOG_SQL)
                        if found is not None:
                            rows += int(found[0])
                            oldest = max(oldest, float(found[1] or 0.0))
                backlog.set(rows)
                age.set(oldest)
                js = self.nats.js
                if js is not None and self.nats.connected:
                    DLQ_DEPTH.set((await js.stream_info(naming.DLQ_STREAM)).state.messages)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("measuring the outbox backlog failed; will retry", error=str(exc))
            await asyncio.sleep(BACKLOG_EVERY_SECONDS)

    # --- hand-off ---------------------------------------------------------------------------

    async def _publish_handed(self) -> None:
        batch = [self._handed.popleft() for _ in range(min(self._batch_size, len(self._handed)))]
        js = self.nats.js
        if js is None:
            return
        sent = await self._publish(js, [row for _, row in batch])
        for (schema, row), ok in zip(batch, sent, strict=True):
            if ok:
                self._published[schema].append(row.event_id)
                self._published_count += 1
        if self._published_count and self._published_since is None:
            self._published_since = time.monotonic()

    async def _delete_published(self) -> None:
        """Deletes the rows published since the last time, one statement per schema."""
        published, self._published = self._published, defaultdict(list)
        self._published_count, self._published_since = 0, None
        for schema, event_ids in published.items():
            async with self._db.session_in(schema) as session:
                await session.execute(DELETE_SQL, event_ids)

    async def _publish(self, js: JetStreamContext, rows: Sequence[OutboxRow]) -> list[bool]:
        """Publishes ``rows`` in order with asynchronous acks; which were acknowledged."""
        futures: list[asyncio.Future[Any]] = []
        spans = [self._span(row) for row in rows] if telemetry.enabled() else []
        try:
            for n, row in enumerate(rows):
                headers = dict(row.headers)
                if spans:  # the consumer's span continues the publish's
                    with trace.use_span(spans[n]):
                        headers[naming.TRACEPARENT] = telemetry.traceparent()
                futures.append(await js.publish_async(row.subject, row.payload, headers=headers))
            if futures:
                await asyncio.wait(futures, timeout=self._publish_timeout)
        except Exception as exc:  # the connection went away mid-batch
            log.warning("outbox publish interrupted; the poll retries", error=str(exc))
        acked = []
        wall = time.time()
        for n, row in enumerate(rows):
            future = futures[n] if n < len(futures) else None
            ok = future is not None and future.done() and not future.cancelled() and future.exception() is None
            if future is not None and not future.done():
                future.cancel()
            acked.append(ok)
            if ok:
                LAG.labels(self._database).observe(max(0.0, wall - row.create_time.timestamp()))
            if spans:
                spans[n].set_attribute(telemetry.OUTCOME, "acked" if ok else "not acknowledged")
                if not ok:
                    spans[n].set_status(StatusCode.ERROR, "not acknowledged by JetStream in time")
                spans[n].end()
        published = sum(acked)
        if published:
            PUBLISHED.labels(self._database).inc(published)
        if published < len(rows):
            PUBLISH_FAILED.labels(self._database).inc(len(rows) - published)
        return acked

    def _span(self, row: OutboxRow) -> trace.Span:
        """The publish of ``row``, continuing the trace of the request that wrote it."""
        return telemetry.tracer.start_span(
            f"publish {row.event_type}", context=telemetry.remote_parent(row.headers.get(naming.TRACEPARENT, "")),
            kind=SpanKind.PRODUCER,
            attributes={"messaging.system": "nats", "messaging.destination.name": row.subject,
                        "messaging.message.id": row.event_id, telemetry.EVENT_TYPE: row.event_type,
                        telemetry.TENANT: row.headers.get(naming.TENANT, "")})

    # --- poll -------------------------------------------------------------------------------

    async def _schemas(self) -> list[str]:
        return sorted(await self._db.tenant_schemas() | self._extra_schemas)

    async def _poll(self) -> int:
        """Publishes what waited in every schema's outbox; how many rows it found."""
        js = self.nats.js
        if js is None:
            return 0
        found = 0
        looked_at = await self._busy.schemas(await self._schemas())
        for schema in await self._db.schemas_where("outbox", WAITING_SQL, looked_at, self._min_age):
            while True:
                with looking_around():
                    rows = await self._publish_waiting(js, schema)
                found += rows
                if rows < self._batch_size or not self.nats.connected:
                    break
        return found

    async def _publish_waiting(self, js: JetStreamContext, schema: str) -> int:
        try:
            return await self._publish_waiting_in(js, schema)
        except asyncpg.UndefinedTableError:  # a schema of a service without events
            return 0

    async def _publish_waiting_in(self, js: JetStreamContext, schema: str) -> int:
        async with self._db.transaction_in(schema) as session:
            rows = [OutboxRow(r["event_id"], r["subject"], r["event_type"], r["payload"], _headers(r["headers"]),
                              r["create_time"])
                    for r in await session.fetch(PENDING_SQL, self._min_age, self._batch_size)]
            if not rows:
                return 0
            acked = await self._publish(js, rows)
            done = [row.event_id for row, ok in zip(rows, acked, strict=True) if ok]
            failed = [row.event_id for row, ok in zip(rows, acked, strict=True) if not ok]
            if done:
                await session.execute(DELETE_SQL, done)
            if failed:
                await session.execute(FAILED_SQL, failed, "not acknowledged by JetStream in time")
                log.warning("outbox publish failed; will retry", failed=len(failed), schema=schema)
        return len(rows)

    async def _delete_old_sent(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self._retention)
        for schema in await self._db.schemas_where("outbox", OLD_SENT_EXISTS_SQL, await self._schemas(), cutoff):
            with contextlib.suppress(asyncpg.UndefinedTableError), looking_around():
                async with self._db.session_in(schema) as session:
                    await session.execute(OLD_SENT_SQL, cutoff)


def _headers(value: Any) -> dict[str, str]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return {str(k): str(v) for k, v in dict(loaded).items()}
