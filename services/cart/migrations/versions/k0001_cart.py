"""Tenant schema of the cart: carts, their lines, idempotency keys.

Revision ID: k0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "k0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "carts",
        sa.Column("cart_id", sa.Text, primary_key=True),
        # Token subject of the owner: a user id or "guest:<id>"; one open cart each.
        sa.Column("customer_id", sa.Text, nullable=False),
        # Currency of the first product added to the empty cart; "" while empty.
        sa.Column("currency_code", sa.Text, nullable=False, server_default=""),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("customer_id", name="carts_customer_id_key"),
    )
    op.create_table(
        "cart_lines",
        sa.Column("cart_id", sa.Text, sa.ForeignKey("carts.cart_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("product_id", sa.Text, primary_key=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.CheckConstraint("quantity BETWEEN 1 AND 1000", name="cart_lines_quantity"),
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
    op.drop_table("cart_lines")
    op.drop_table("carts")
