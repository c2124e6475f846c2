"""The outbox of a tenant's user events (UserRegistered, UserDeleted).

Revision ID: t0002
Revises: t0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from services.runtime.events.schema import create_event_tables, drop_event_tables

revision = "t0002"
down_revision = "t0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables(op)


def downgrade() -> None:
    drop_event_tables(op)
