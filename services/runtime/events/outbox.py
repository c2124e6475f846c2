"""Writing an integration event in the caller's transaction (transactional outbox).

    async with db.tenant(tenant_id) as conn:
        ...state change...
        await emit(conn, order_events_pb2.OrderPlaced(order=...), tenant_id=tenant_id, aggregate_id=order_id)

The event commits or rolls back with the state change; the relay publishes it
after the commit (woken by NOTIFY on ``CHANNEL``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.db import schema_for
from services.runtime.events import naming, tracing
from services.runtime.events.schema import PENDING, outbox

CHANNEL = "commerce_outbox"


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


async def emit(conn: AsyncConnection, event: Message, *, tenant_id: str, aggregate_id: str,
               schema: str | None = None) -> str:
    """Fill ``event.metadata``, store the event in the tenant's outbox within ``conn``'s
    transaction, and return its event id. ``schema``: the schema ``conn`` writes to when
    it is not the tenant's own (the tenant service's ``platform`` schema)."""
    event_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    traceparent = tracing.child_of(tracing.current_traceparent())
    _fill_metadata(event, event_id, tenant_id, aggregate_id, traceparent, now)
    event_type = event.DESCRIPTOR.full_name
    headers = {
        naming.MSG_ID: event_id,
        naming.EVENT_TYPE: event_type,
        naming.TENANT: tenant_id,
        naming.TRACEPARENT: traceparent,
    }
    inserted = outbox.insert().values(
        event_id=event_id, subject=naming.subject_for(event.DESCRIPTOR, tenant_id), event_type=event_type,
        payload=event.SerializeToString(), headers=headers, state=PENDING, attempts=0, create_time=now,
    ).returning(outbox.c.event_id).cte("emitted")
    # One round trip for the row and the relay's wake-up (delivered on commit, once per
    # transaction and schema however many events it emits).
    await conn.execute(select(func.pg_notify(CHANNEL, schema or schema_for(tenant_id))).select_from(inserted))
    return event_id
