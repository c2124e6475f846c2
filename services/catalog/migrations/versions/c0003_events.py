"""The transactional outbox (and inbox) of the catalog's integration events.

Revision ID: c0003
Revises: c0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from services.runtime.events.schema import create_event_tables, drop_event_tables

revision = "c0003"
down_revision = "c0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables(op)


def downgrade() -> None:
    drop_event_tables(op)
