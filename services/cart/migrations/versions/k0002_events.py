"""Event tables of the cart's tenant schema: the inbox of its OrderConfirmed
consumer (and the outbox every service keeps).

Revision ID: k0002
Revises: k0001
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

from services.runtime.events.schema import create_event_tables, drop_event_tables

revision = "k0002"
down_revision = "k0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables(op)


def downgrade() -> None:
    drop_event_tables(op)
