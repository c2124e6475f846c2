"""Test schema: the event tables plus one table a handler writes its effect to.

Revision ID: e0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from services.runtime.events.schema import create_event_tables, drop_event_tables

revision = "e0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_tables(op)
    op.create_table("effects", sa.Column("event_id", sa.Text, primary_key=True),
                    sa.Column("consumer", sa.Text, nullable=False))


def downgrade() -> None:
    op.drop_table("effects")
    drop_event_tables(op)
