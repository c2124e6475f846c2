"""The outbox and inbox tables every service that emits or consumes events keeps in
each tenant schema. Call ``create_event_tables(op)`` from a service's Alembic
revision; the Core tables below are declared without a schema (rendered into the
tenant's schema by ``Database.tenant``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    # Publication order (events of one aggregate are published in the order written).
    sa.Column("position", sa.BigInteger, sa.Identity(), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("headers", JSONB, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_time", sa.DateTime(timezone=True)),
)

inbox = sa.Table(
    "inbox", metadata,
    sa.Column("consumer", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("processed_time", sa.DateTime(timezone=True), nullable=False),
)

PENDING, SENT, FAILED = "pending", "sent", "failed"


def create_event_tables(op: Any) -> None:
    """Create ``outbox`` and ``inbox`` in the schema being migrated (Alembic ``op``)."""
    op.create_table(
        "outbox",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("position", sa.BigInteger, sa.Identity(always=True), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("state", sa.Text, nullable=False, server_default=PENDING),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_time", sa.DateTime(timezone=True)),
        sa.CheckConstraint(f"state IN ('{PENDING}', '{SENT}', '{FAILED}')", name="outbox_state"),
    )
    # The relay only ever looks for pending rows, oldest first.
    op.create_index("outbox_pending", "outbox", ["position"], postgresql_where=sa.text(f"state = '{PENDING}'"))
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("processed_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


# Forgetting a consumer's old inbox entries (consumer.py) reads them by age: without this index
# it read every entry of the consumer (the primary key's range), days of events, every hour.
INBOX_AGE_INDEX = "inbox_consumer_processed"


def create_inbox_age_index(op: Any) -> None:
    """The inbox index by (consumer, processed_time), in a later migration of each service (the
    index is built in the migration's transaction: the inbox's writers wait meanwhile)."""
    op.create_index(INBOX_AGE_INDEX, "inbox", ["consumer", "processed_time"])


def drop_inbox_age_index(op: Any) -> None:
    op.drop_index(INBOX_AGE_INDEX, table_name="inbox")


def drop_event_tables(op: Any) -> None:
    op.drop_table("inbox")
    op.drop_table("outbox")
