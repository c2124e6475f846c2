"""The log of emails sent, per tenant schema; also what keeps an order from getting
two confirmation (or cancellation) emails."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.notifications.domain.emails import Email

sent_emails = sa.Table(
    "sent_emails", sa.MetaData(),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("sent_time", sa.DateTime(timezone=True), nullable=False),
)


async def record(conn: AsyncConnection, event_id: str, email: Email) -> bool:
    """Log the email about to be sent; False when this email was already sent."""
    first = await conn.scalar(
        insert(sent_emails).values(event_id=event_id, kind=email.kind, order_id=email.order_id,
                                   recipient=email.to, subject=email.subject, sent_time=datetime.now(UTC))
        .on_conflict_do_nothing().returning(sent_emails.c.event_id))
    return first is not None
