"""Writing an integration event in the caller's transaction (transactional outbox).

Hot path (asyncpg, services/runtime/sql.py): build the row, insert it in the same
statement or transaction as the change, and tell the session it was written:

    row = outbox_row(order_events_pb2.OrderConfirmed(order=...), tenant_id=t, aggregate_id=order_id)
    async with db.transaction(t) as s:
        ...state change...
        await insert(s, row)            # or one CTE of the change's own statement: INSERT_SQL
    # committed: the relay publishes the row at once (Session.add_events)

Cold path (SQLAlchemy): ``await emit(conn, event, tenant_id=..., aggregate_id=...)`` inside
``db.tenant(...)`` / ``db.in_schema(...)``; handed to the relay after COMMIT likewise.

The event commits or rolls back with the state change. A row whose hand-off is lost
(process gone, NATS away) is found by a relay's poll and published then.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from opentelemetry.trace import SpanKind
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime import telemetry
from services.runtime.db import OUTBOX_ROWS
from services.runtime.events import naming, tracing
from services.runtime.events.schema import PENDING, outbox
from services.runtime.sql import Session, Sql

COLUMNS = "event_id, subject, event_type, payload, headers, state, attempts, create_time"


def values_sql(first: int) -> str:
    """``VALUES``-list items of one row's ``COLUMNS`` whose parameters start at ``$first``
    (``OutboxRow.args()``, in order), for a CTE of a caller's own statement."""
    n = first
    return f"${n}, ${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}::jsonb, '{PENDING}', 0, ${n + 5}"


INSERT_SQL = Sql(f"INSERT INTO {{schema}}.outbox ({COLUMNS}) VALUES ({values_sql(1)})")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    event_id: str
    subject: str
    event_type: str
    payload: bytes
    headers: dict[str, str]
    create_time: datetime

    def args(self) -> tuple[str, str, str, bytes, str, datetime]:
        return (self.event_id, self.subject, self.event_type, self.payload, json.dumps(self.headers),
                self.create_time)


def _fill_metadata(event: Message, event_id: str, tenant_id: str, aggregate_id: str,
                   traceparent: str, now: datetime) -> None:
    if "metadata" not in event.DESCRIPTOR.fields_by_name:
        raise TypeError(f"{event.DESCRIPTOR.full_name} has no metadata field: not an integration event")
    meta: Any = event.metadata  # type: ignore[attr-defined]
    meta.event_id = event_id
    meta.event_type = event.DESCRIPTOR.full_name
    meta.tenant_id = tenant_id
    meta.occur_time.FromDatetime(now)
    meta.trace_parent = traceparent
    meta.aggregate_id = aggregate_id


def outbox_row(event: Message, *, tenant_id: str, aggregate_id: str) -> OutboxRow:
    """Fills ``event.metadata`` (a new event id, the current trace) and returns its outbox row."""
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    event_type = event.DESCRIPTOR.full_name
    if telemetry.enabled():  # the row is a span of the request's trace; the relay's publish continues it
        with telemetry.span(f"outbox {event_type}", {telemetry.EVENT_ID: event_id, telemetry.EVENT_TYPE: event_type,
                                                      telemetry.TENANT: tenant_id}, kind=SpanKind.PRODUCER):
            traceparent = tracing.current_traceparent()
    else:
        traceparent = tracing.child_of(tracing.current_traceparent())
    _fill_metadata(event, event_id, tenant_id, aggregate_id, traceparent, now)
    headers = {
        naming.MSG_ID: event_id,
        naming.EVENT_TYPE: event_type,
        naming.TENANT: tenant_id,
        naming.TRACEPARENT: traceparent,
    }
    return OutboxRow(event_id, naming.subject_for(event.DESCRIPTOR, tenant_id), event_type,
                     event.SerializeToString(), headers, now)


async def insert(session: Session, row: OutboxRow) -> None:
    """Writes ``row`` with one statement of its own in ``session``'s transaction."""
    await session.execute(INSERT_SQL, *row.args())
    session.add_events(row)


async def emit(conn: AsyncConnection, event: Message, *, tenant_id: str, aggregate_id: str,
               schema: str | None = None) -> str:
    """Cold path: fill ``event.metadata``, store the event in ``conn``'s transaction (a
    ``Database.tenant`` / ``in_schema`` one), and return its event id. ``schema`` is unused
    (kept for callers that name the ``platform`` schema)."""
    del schema
    row = outbox_row(event, tenant_id=tenant_id, aggregate_id=aggregate_id)
    await conn.execute(outbox.insert().values(
        event_id=row.event_id, subject=row.subject, event_type=row.event_type, payload=row.payload,
        headers=row.headers, state=PENDING, attempts=0, create_time=row.create_time))
    pending = conn.info.get(OUTBOX_ROWS)
    if pending is not None:
        pending.append(row)
    return row.event_id

