"""Tenant schema of the payment service: payments, refunds, provider webhook
events, the sandbox provider's operations, idempotency keys.

Revision ID: p0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "p0001"
down_revision = None
branch_labels = None
depends_on = None

_STATUSES = "'AUTHORIZED', 'CAPTURED', 'VOIDED', 'PARTIALLY_REFUNDED', 'REFUNDED', 'DECLINED', 'FAILED'"


def upgrade() -> None:
    op.create_table(
        "payments",
        # COLLATE "C": ids sort byte-wise, as the page tokens assume, whatever the database locale.
        sa.Column("payment_id", sa.Text(collation="C"), primary_key=True),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("authorize_request_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("currency_code", sa.CHAR(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("captured_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("refunded_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("provider_reference", sa.Text, nullable=False),
        sa.Column("decline_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("authorize_request_id", name="payments_authorize_request_id_key"),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name="payments_status"),
        sa.CheckConstraint("amount_minor > 0", name="payments_amount_positive"),
        # Money never appears from nowhere: refunds within the capture, the capture within the hold.
        sa.CheckConstraint("0 <= captured_minor AND captured_minor <= amount_minor", name="payments_captured"),
        sa.CheckConstraint("0 <= refunded_minor AND refunded_minor <= captured_minor", name="payments_refunded"),
    )
    op.create_index("payments_order", "payments", ["order_id", "payment_id"])
    op.create_index("payments_status", "payments", ["status", "payment_id"])
    op.create_index("payments_reference", "payments", ["provider", "provider_reference"], unique=True)
    op.create_table(
        "refunds",
        sa.Column("refund_id", sa.Text(collation="C"), primary_key=True),
        sa.Column("payment_id", sa.Text(collation="C"), sa.ForeignKey("payments.payment_id"), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("provider_reference", sa.Text, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("amount_minor > 0", name="refunds_amount_positive"),
        sa.UniqueConstraint("payment_id", "provider_reference", name="refunds_provider_reference_key"),
    )
    op.create_table(
        "provider_events",
        sa.Column("provider", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("payment_id", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("receive_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # The sandbox provider's own memory (see services/payment/providers/sandbox.py).
    op.create_table(
        "sandbox_operations",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("idempotency_key", sa.Text, primary_key=True),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("payment_reference", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("decline_reason", sa.Text, nullable=False),
        sa.Column("currency_code", sa.CHAR(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    # Same table as services/runtime/idempotency.py declares.
    op.create_table(
        "idempotency_keys",
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("sandbox_operations")
    op.drop_table("provider_events")
    op.drop_table("refunds")
    op.drop_table("payments")
