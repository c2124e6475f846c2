"""Provider webhook events already received (deduplication by the provider's event id)."""

from __future__ import annotations

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payment.store.tables import provider_events

RECEIVED, APPLIED, IGNORED = "received", "applied", "ignored"


async def record(conn: AsyncConnection, provider: str, event_id: str, kind: str) -> bool:
    """True the first time this event is seen; a concurrent duplicate waits for the first to commit."""
    row = (await conn.execute(
        insert(provider_events).values(provider=provider, event_id=event_id, type=kind, outcome=RECEIVED,
                                       receive_time=func.now())
        .on_conflict_do_nothing().returning(provider_events.c.event_id)
    )).first()
    return row is not None


async def settle(conn: AsyncConnection, provider: str, event_id: str, outcome: str, payment_id: str | None) -> None:
    await conn.execute(provider_events.update()
                       .where(provider_events.c.provider == provider, provider_events.c.event_id == event_id)
                       .values(outcome=outcome, payment_id=payment_id))
