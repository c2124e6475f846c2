"""The log of emails sent, per tenant schema; also what keeps an order from getting
two confirmation (or cancellation) emails."""

from __future__ import annotations

import sqlalchemy as sa

from services.notifications.domain.emails import Email
from services.runtime.sql import Session, Sql

sent_emails = sa.Table(
    "sent_emails", sa.MetaData(),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("sent_time", sa.DateTime(timezone=True), nullable=False),
)


RECORD = Sql("INSERT INTO {schema}.sent_emails (event_id, kind, order_id, recipient, subject, sent_time) "
             "VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT DO NOTHING RETURNING event_id")


async def record(session: Session, event_id: str, email: Email) -> bool:
    """Log the email about to be sent; False when this email was already sent."""
    first = await session.fetchval(RECORD, event_id, email.kind, email.order_id, email.to, email.subject)
    return first is not None
