"""Carts of deleted users: when the tenant service deletes a user (UserDeleted, from its
outbox), that user's cart and its lines are deleted. Runs as the handler of a durable
consumer, inside the tenant transaction that also records the event in the inbox."""

from __future__ import annotations

from commerce.tenant.v1 import tenant_events_pb2
from google.protobuf.message import Message

from services.runtime.sql import Session, Sql

DURABLE = "cart-user-deleted"
EVENT = tenant_events_pb2.UserDeleted

# Its lines go with it (ON DELETE CASCADE).
DELETE_CARTS = Sql("DELETE FROM {schema}.carts WHERE customer_id = $1")


async def on_user_deleted(session: Session, event: Message, tenant_id: str) -> None:
    if not isinstance(event, EVENT) or not event.user_id or event.tenant_id != tenant_id:
        return
    await session.execute(DELETE_CARTS, event.user_id)
