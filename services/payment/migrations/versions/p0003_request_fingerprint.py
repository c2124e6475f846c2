"""payments.request_fingerprint: the payment row is the idempotency record of the
request that made it (ChargePayment keeps no idempotency_keys row), so it keeps a
fingerprint of that request to refuse its request_id for another one.

Revision ID: p0003
Revises: p0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0003"
down_revision = "p0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "" on rows written before: their request is not known (AuthorizePayment's are in idempotency_keys).
    op.add_column("payments", sa.Column("request_fingerprint", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("payments", "request_fingerprint")
