"""The inbox read by age: an index by (consumer, processed_time), so that forgetting a
consumer's old entries (services/runtime/events/consumer.py) reads those alone.

Expand step (services/runtime/MIGRATIONS.md): an index only.

Revision ID: o0002
Revises: o0001
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

from services.runtime.events.schema import create_inbox_age_index, drop_inbox_age_index

revision = "o0002"
down_revision = "o0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_inbox_age_index(op)


def downgrade() -> None:
    drop_inbox_age_index(op)
