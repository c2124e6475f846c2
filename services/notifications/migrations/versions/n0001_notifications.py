"""Tenant schema of the notifications worker: the event inbox (and an unused outbox,
from the shared event tables) and the log of emails sent.

Revision ID: n0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.runtime.events.schema import create_event_tables, drop_event_tables

revision = "n0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables(op)
    op.create_table(
        "sent_emails",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("sent_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # An order is confirmed or cancelled once: never two such emails for one order,
    # even if the order service emitted the event twice. Refunds may be several.
    op.create_index("sent_emails_once_per_order", "sent_emails", ["kind", "order_id"], unique=True,
                    postgresql_where=sa.text("kind IN ('confirmed', 'cancelled')"))


def downgrade() -> None:
    op.drop_table("sent_emails")
    drop_event_tables(op)
