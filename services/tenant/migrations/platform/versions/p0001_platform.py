"""Platform schema: tenants, platform admins, idempotency keys.

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


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("currency_code", sa.CHAR(3), nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("provisioned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("state IN ('PROVISIONING', 'ACTIVE', 'SUSPENDED')", name="tenants_state"),
    )
    # ListTenants pages oldest first; the provisioning retry loop scans the unprovisioned.
    op.create_index("tenants_by_create_time", "tenants", ["create_time", "tenant_id"])
    op.create_index("tenants_unprovisioned", "tenants", ["tenant_id"], postgresql_where=sa.text("NOT provisioned"))
    op.create_table(
        "admins",
        sa.Column("admin_id", sa.Text, primary_key=True),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False, server_default=""),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("admins_email", "admins", [sa.text("lower(email)")], unique=True)
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
    op.drop_table("admins")
    op.drop_table("tenants")
