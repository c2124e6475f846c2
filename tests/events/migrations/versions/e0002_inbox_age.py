"""Test schema: the inbox's age index, as every service has it.

Revision ID: e0002
Revises: e0001
"""

from __future__ import annotations

from alembic import op

from services.runtime.events.schema import create_inbox_age_index, drop_inbox_age_index

revision = "e0002"
down_revision = "e0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_age_index(op)


def downgrade() -> None:
    drop_inbox_age_index(op)
