"""The outbox of the platform-wide tenant events (TenantCreated, TenantSuspended).

Revision ID: p0002
Revises: p0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from services.runtime.events.schema import create_event_tables, drop_event_tables

revision = "p0002"
down_revision = "p0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables(op)


def downgrade() -> None:
    drop_event_tables(op)
