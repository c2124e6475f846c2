"""Durable JetStream pull consumers that apply each event once.

    consumer = EventConsumer(db, settings, durable="cart-orders",
                             subjects=["commerce.order.v1.order_confirmed.*"], handler=on_event)
    App(..., on_start=[consumer.start], on_stop=[consumer.stop])

For each message: the event class comes from the ``Commerce-Event-Type`` header and
the tenant from ``Commerce-Tenant`` (the subject's last token and ``metadata.tenant_id``
must name the same tenant); inside ``db.transaction(tenant)`` the event id is
inserted in the ``inbox`` and, only if it was not there yet, ``handler(session, event,
tenant_id)`` runs in the same transaction (a services/runtime/sql.py session); the
message is acked after the commit. The messages of one pull that belong to one tenant
are applied in one such transaction (one inbox statement for all, then each handler);
if it fails they are applied one by one, so only the failing one is retried.
A handler error naks the message with back-off; on delivery ``max_deliver`` a
failure sends it to ``dlq.<subject>`` (stream COMMERCE_DLQ) and acks it. A message
that cannot be decoded, or whose tenants disagree, goes to the dead-letter subject at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import nats.errors
import structlog
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError
from opentelemetry.trace import Span, SpanKind
from prometheus_client import Counter, Gauge, Histogram

from services.runtime import telemetry
from services.runtime.db import TENANT_ID_PATTERN, Database, looking_around
from services.runtime.errors import NotFound
from services.runtime.events import naming, registry, tracing
from services.runtime.events.connection import NatsAuth, NatsConnection
from services.runtime.migrations import upgrade_tenant
from services.runtime.settings import Settings
from services.runtime.sql import Session, Sql
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.events.consumer")
Handler = Callable[[Session, Message, str], Awaitable[None]]
# Called once in a transaction that applies several events, before their handlers (e.g. to
# lock every row the handlers will lock, in one order, so concurrent writers cannot deadlock).
Prepare = Callable[[Session, Sequence[Message], str], Awaitable[None]]

FIRST_TIME_SQL = Sql("INSERT INTO {schema}.inbox (consumer, event_id, processed_time) VALUES ($1, $2, now()) "
                     "ON CONFLICT DO NOTHING RETURNING event_id")
FIRST_TIMES_SQL = Sql("INSERT INTO {schema}.inbox (consumer, event_id, processed_time) "
                      "SELECT $1, e, now() FROM unnest($2::text[]) AS e "
                      "ON CONFLICT DO NOTHING RETURNING event_id")
# A batch of a consumer's entries older than the cutoff (the inbox's age index finds them).
FORGET_SQL = Sql("""
DELETE FROM {schema}.inbox i USING (
    SELECT consumer, event_id FROM {schema}.inbox WHERE consumer = $1 AND processed_time < $2 LIMIT $3) old
WHERE i.consumer = old.consumer AND i.event_id = old.event_id""")
FORGET_BATCH = 5000  # entries deleted a statement (a transaction): short locks, bounded WAL bursts

CONSUMED = Counter("commerce_events_consumed_total", "Events applied by a consumer", ["consumer"])
DUPLICATES = Counter("commerce_events_duplicate_total", "Redelivered events skipped thanks to the inbox",
                     ["consumer"])
FAILED = Counter("commerce_events_failed_total", "Handler failures (the event is redelivered)", ["consumer"])
DEAD = Counter("commerce_events_dead_lettered_total", "Events sent to the dead-letter subject", ["consumer"])
PENDING = Gauge("commerce_consumer_pending", "Events of the stream this durable consumer has not acknowledged yet "
                "(waiting or in flight), measured every PENDING_EVERY_SECONDS", ["consumer"])
PENDING_EVERY_SECONDS = 15.0
LAG = Histogram("commerce_event_lag_seconds", "From the event's occur_time to its commit by a consumer",
                ["consumer"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

# Pulls: how long an idle consumer's pull waits for an event, and a busy one's for more.
IDLE_WAIT_SECONDS = 1.0
BUSY_WAIT_SECONDS = 0.005

DLQ_REASON = "Commerce-Dlq-Reason"
DLQ_CONSUMER = "Commerce-Dlq-Consumer"


class _Poison(Exception):
    """The message can never be applied (undecodable, no tenant)."""


@dataclass(frozen=True, slots=True)
class _Event:
    msg: Msg
    message: Message
    tenant_id: str
    event_id: str
    traceparent: str


def _decode(msg: Msg) -> _Event:
    """The event a message carries, and whose it is; _Poison when it can never be applied."""
    headers = msg.headers or {}
    try:
        event = registry.decode(headers.get(naming.EVENT_TYPE, ""), msg.data)
    except Exception as exc:
        raise _Poison(f"cannot decode: {type(exc).__name__}: {exc}") from exc
    meta = event.metadata  # type: ignore[attr-defined]
    tenant_id = headers.get(naming.TENANT) or meta.tenant_id
    # The subject's last token, the header and the metadata must name one tenant: a message
    # naming two would be applied in one of them with the other's data.
    named = {msg.subject.rsplit(".", 1)[-1], headers.get(naming.TENANT, ""), meta.tenant_id} - {""}
    if len(named) > 1:
        raise _Poison(f"tenants disagree: subject {msg.subject!r}, {naming.TENANT} "
                      f"{headers.get(naming.TENANT, '')!r}, metadata.tenant_id {meta.tenant_id!r}")
    # The payload's id is authoritative: a re-published copy may carry another Nats-Msg-Id.
    event_id = meta.event_id or headers.get(naming.MSG_ID, "")
    if not TENANT_ID_PATTERN.fullmatch(tenant_id) or not event_id:
        raise _Poison(f"event without a valid tenant ({tenant_id!r}) or event id")
    return _Event(msg, event, tenant_id, event_id, headers.get(naming.TRACEPARENT) or tracing.new_traceparent())


class EventConsumer:
    def __init__(self, db: Database, settings: Settings, *, durable: str, subjects: Sequence[str],
                 handler: Handler, max_deliver: int = 5, ack_wait: float = 30.0, batch_size: int = 32,
                 nak_base_seconds: float = 0.5, nak_max_seconds: float = 30.0,
                 script_location: Path | None = None, nats_url: str | None = None,
                 inbox_retention_seconds: float = naming.STREAM_MAX_AGE_SECONDS + 86400.0,
                 cleanup_every_seconds: float = 3600.0, together: bool = True, parallel: int = 1,
                 prepare: Prepare | None = None, forget_batch: int = FORGET_BATCH) -> None:
        """``script_location``: when given, an event of a tenant whose schema does not
        exist yet in ``db`` creates it (Alembic upgrade) instead of failing.
        Inbox entries older than ``inbox_retention_seconds`` (longer than JetStream keeps
        events, so their event cannot come back) are deleted every ``cleanup_every_seconds``,
        ``forget_batch`` a statement.
        ``together``: events of one pull and tenant share a transaction (False: one transaction
        each, for handlers whose effect outside the database must not be repeated when others
        fail; then up to ``parallel`` of them are applied at once, for handlers that wait on
        something slow, e.g. an SMTP server, and not in stream order)."""
        if not subjects:
            raise ValueError("a consumer needs at least one subject")
        self._db = db
        self.durable = durable
        self._subjects = list(subjects)
        self._handler = handler
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait
        self._batch_size = batch_size
        self._together = together
        self._prepare = prepare
        self._parallel = max(1, parallel)
        self._running: set[asyncio.Task[None]] = set()  # events applied alone, in flight
        self._nak_base = nak_base_seconds
        self._nak_max = nak_max_seconds
        self._script_location = script_location
        self.nats = NatsConnection(nats_url or settings.nats_url, f"{db.database}-{durable}",
                                   replicas=settings.nats_stream_replicas, auth=NatsAuth.of(settings))
        self._inbox_retention = inbox_retention_seconds
        self._cleanup_every = cleanup_every_seconds
        self._forget_batch = forget_batch
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        for series in (CONSUMED, DUPLICATES, FAILED, DEAD):  # at 0 from the start, so rules see them
            series.labels(durable)

    async def start(self) -> None:
        await self.nats.start()
        self._tasks = [asyncio.create_task(self._run(), name=f"consumer-{self.durable}"),
                       asyncio.create_task(self._forget_old(), name=f"consumer-inbox-{self.durable}"),
                       asyncio.create_task(self._measure(), name=f"consumer-pending-{self.durable}")]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        await cancel_and_wait(*self._running)  # their messages come again; the inbox keeps them once
        await self.nats.close()

    async def _forget_old(self) -> None:
        while True:
            await asyncio.sleep(self._cleanup_every)
            cutoff = datetime.now(UTC) - timedelta(seconds=self._inbox_retention)
            try:
                # a chore, not a use of each schema (busy.py would take every schema for a busy one)
                with looking_around():
                    for schema in sorted(await self._db.tenant_schemas()):
                        with contextlib.suppress(asyncpg.UndefinedTableError):  # a schema without an inbox
                            await self._forget_in(schema, cutoff)
            except Exception as exc:
                log.warning("inbox cleanup failed; will retry", consumer=self.durable, error=str(exc))

    async def _forget_in(self, schema: str, cutoff: datetime) -> None:
        """Deletes the consumer's entries of ``schema`` older than ``cutoff``, a batch a statement."""
        while True:
            async with self._db.session_in(schema) as session:
                status = await session.execute(FORGET_SQL, self.durable, cutoff, self._forget_batch)
            if int(status.split()[-1]) < self._forget_batch:
                return

    async def _measure(self) -> None:
        pending = PENDING.labels(self.durable)
        while True:
            js = self.nats.js
            if js is not None and self.nats.connected:
                try:
                    info = await js.consumer_info(naming.STREAM, self.durable)
                    pending.set((info.num_pending or 0) + (info.num_ack_pending or 0))
                except Exception as exc:  # not created yet, or NATS going away
                    log.debug("consumer info unavailable", consumer=self.durable, error=str(exc))
            await asyncio.sleep(PENDING_EVERY_SECONDS)

    async def wait_subscribed(self) -> None:
        """Until the durable consumer exists on the server and this process pulls from it."""
        await self._subscribed.wait()

    # -- subscription -------------------------------------------------------------

    def _config(self) -> ConsumerConfig:
        config = ConsumerConfig(
            name=self.durable, durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL, ack_wait=self._ack_wait,
            # Unbounded on the server: this consumer dead-letters after max_deliver itself,
            # so a message is never dropped without reaching the dead-letter subject.
            max_deliver=-1, max_ack_pending=1000,
        )
        if len(self._subjects) == 1:
            config.filter_subject = self._subjects[0]
        else:
            config.filter_subjects = self._subjects
        return config

    async def _subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        try:
            await js.add_consumer(naming.STREAM, self._config())
        except APIError as exc:  # exists with another configuration: keep it, say so
            log.warning("consumer exists with another configuration", consumer=self.durable, error=str(exc))
        return await js.pull_subscribe_bind(durable=self.durable, stream=naming.STREAM)

    async def _run(self) -> None:
        delay = 0.2
        while True:
            js = await self.nats.wait_ready()
            try:
                sub = await self._subscribe(js)
                self._subscribed.set()
                delay = 0.2
                try:
                    await self._consume(js, sub)
                finally:
                    self._subscribed.clear()
                    with contextlib.suppress(Exception):
                        await sub.unsubscribe()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer interrupted; subscribing again", consumer=self.durable, error=str(exc))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _consume(self, js: JetStreamContext, sub: JetStreamContext.PullSubscription) -> None:
        """Idle, one lingering pull of ONE message (it returns the moment an event arrives: a pull
        for more would wait out its timeout to fill the batch); busy, pulls of up to a batch that
        return what is there at once and give up after BUSY_WAIT_SECONDS (back to idle)."""
        idle = 0
        busy = False
        while True:
            batch = self._batch_size
            if not self._together:  # pull no more than can be applied now
                busy_slots = sum(1 for task in self._running if not task.done())
                if busy_slots >= self._parallel:
                    await asyncio.wait(self._running, return_when=asyncio.FIRST_COMPLETED)
                    busy_slots = sum(1 for task in self._running if not task.done())
                batch = max(1, min(batch, self._parallel - busy_slots))
            try:
                messages = await (sub.fetch(batch, timeout=BUSY_WAIT_SECONDS) if busy
                                  else sub.fetch(1, timeout=IDLE_WAIT_SECONDS))
            except (TimeoutError, nats.errors.TimeoutError):
                if busy:
                    busy = False
                    continue
                idle += 1
                if idle % 10 == 0 and self.nats.connected:
                    await sub.consumer_info()  # NotFoundError when the consumer is gone: subscribe again
                continue
            idle = 0
            busy = True
            await self._process_all(js, messages)

    # -- a batch of messages ------------------------------------------------------

    async def _process_all(self, js: JetStreamContext, messages: list[Msg]) -> None:
        """Messages of one tenant are applied together in one transaction (one inbox statement,
        then each handler); when that fails, one by one, so only the failing one is retried."""
        by_tenant: dict[str, list[_Event]] = {}
        for msg in messages:
            delivered = msg.metadata.num_delivered or 1
            if delivered > self._max_deliver:  # failed before, e.g. the process died while handling it
                await self._dead_letter(js, msg, f"not applied after {delivered - 1} deliveries")
                continue
            try:
                event = _decode(msg)
            except _Poison as exc:
                await self._dead_letter(js, msg, str(exc))
                continue
            by_tenant.setdefault(event.tenant_id, []).append(event)
        if not self._together:  # each alone, in the background: up to ``parallel`` at once
            for event in (event for events in by_tenant.values() for event in events):
                task = asyncio.create_task(self._process(js, event))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            return
        for tenant_id, events in by_tenant.items():
            if len(events) > 1:
                try:
                    applied = await self._apply_together(tenant_id, events)
                except Exception:  # each is tried alone below, where its error is handled
                    pass
                else:
                    for event in events:
                        self._count(event, event.event_id in applied)
                        await self._ack(event.msg)
                    continue
            for event in events:
                await self._process(js, event)

    async def _apply_together(self, tenant_id: str, events: list[_Event]) -> set[str]:
        """Applies the events not in the inbox yet in one transaction; the ids it applied."""
        applied: set[str] = set()
        async with self._db.transaction(tenant_id) as session:
            first = {r["event_id"] for r in await session.fetch(
                FIRST_TIMES_SQL, self.durable, [event.event_id for event in events])}
            if self._prepare is not None and first:
                await self._prepare(session, [e.message for e in events if e.event_id in first], tenant_id)
            for event in events:
                if event.event_id in first and event.event_id not in applied:
                    applied.add(event.event_id)
                    with self._span(event):
                        await self._handle(session, event)
        return applied

    def _span(self, event: _Event) -> AbstractContextManager[Span]:
        """The handling of ``event``, continuing the trace of its publish (its traceparent)."""
        if not telemetry.enabled():
            return telemetry.span("")  # the shared no-op: no attributes built
        return telemetry.span(
            f"process {event.message.DESCRIPTOR.full_name}",
            {"messaging.system": "nats", "messaging.destination.name": event.msg.subject,
             "messaging.consumer.group.name": self.durable, "messaging.message.id": event.event_id,
             telemetry.EVENT_TYPE: event.message.DESCRIPTOR.full_name, telemetry.TENANT: event.tenant_id},
            kind=SpanKind.CONSUMER, parent=event.traceparent)

    async def _handle(self, session: Session, event: _Event) -> None:
        token = tracing.set_traceparent(event.traceparent)
        try:
            await self._handler(session, event.message, event.tenant_id)
        finally:
            tracing.reset_traceparent(token)

    def _count(self, event: _Event, applied: bool) -> None:
        if not applied:
            DUPLICATES.labels(self.durable).inc()
            return
        CONSUMED.labels(self.durable).inc()
        meta = event.message.metadata  # type: ignore[attr-defined]
        if meta.HasField("occur_time"):
            LAG.labels(self.durable).observe(max(0.0, time.time() - meta.occur_time.ToDatetime(UTC).timestamp()))

    # -- one message --------------------------------------------------------------

    async def _process(self, js: JetStreamContext, event: _Event) -> None:
        msg = event.msg
        delivered = msg.metadata.num_delivered or 1
        try:
            with self._span(event):
                applied = await self._apply_in_tenant(event)
        except Exception as exc:
            FAILED.labels(self.durable).inc()
            if delivered >= self._max_deliver:
                log.error("event failed on its last delivery; dead-lettered", consumer=self.durable,
                          subject=msg.subject, delivered=delivered, error=repr(exc))
                await self._dead_letter(js, msg, f"{type(exc).__name__}: {exc}")
            else:
                log.warning("event handler failed; will be redelivered", consumer=self.durable,
                            subject=msg.subject, delivered=delivered, error=repr(exc))
                await msg.nak(delay=min(self._nak_base * 2 ** (delivered - 1), self._nak_max))
            return
        self._count(event, applied)
        await self._ack(msg)

    async def _ack(self, msg: Msg) -> None:
        await msg.ack()

    async def _apply_in_tenant(self, event: _Event) -> bool:
        try:
            return await self._apply_once(event)
        except NotFound as exc:
            if self._script_location is None or exc.reason != "TENANT_NOT_FOUND":
                raise
        await upgrade_tenant(self._db, event.tenant_id, self._script_location)
        return await self._apply_once(event)

    async def _apply_once(self, event: _Event) -> bool:
        async with self._db.transaction(event.tenant_id) as session:
            if await session.fetchval(FIRST_TIME_SQL, self.durable, event.event_id) is None:
                return False
            await self._handle(session, event)
        return True

    async def _dead_letter(self, js: JetStreamContext, msg: Msg, reason: str) -> None:
        headers = dict(msg.headers or {})
        event_id = headers.get(naming.MSG_ID, "")
        headers[naming.MSG_ID] = f"{self.durable}:{event_id or msg.metadata.sequence.stream}"
        headers[DLQ_REASON] = reason[:500]
        headers[DLQ_CONSUMER] = self.durable
        try:
            await js.publish(naming.DLQ_PREFIX + msg.subject, msg.data, timeout=5.0, headers=headers)
        except Exception as exc:  # keep it: redelivered, and dead-lettered then
            log.warning("dead-letter publish failed; will retry", consumer=self.durable, error=str(exc))
            await msg.nak(delay=self._nak_max)
            return
        DEAD.labels(self.durable).inc()
        await self._ack(msg)
