"""Tenant schema of the catalog: products, their stock, idempotency keys.

Revision ID: c0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "c0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        # COLLATE "C": ids sort byte-wise, as the page tokens assume, whatever the database locale.
        sa.Column("product_id", sa.Text(collation="C"), primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("category", sa.Text, nullable=False),
        sa.Column("attributes", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("price_currency", sa.CHAR(3), nullable=False),
        sa.Column("price_minor", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("price_minor >= 0", name="products_price_not_negative"),
        sa.CheckConstraint("status IN ('DRAFT', 'ACTIVE', 'ARCHIVED')", name="products_status"),
        sa.UniqueConstraint("sku", name="products_sku_key"),
    )
    # Every list is ordered by product_id (the keyset); each filter's index carries it too.
    op.create_index("products_category", "products", ["category", "product_id"])
    op.create_index("products_status", "products", ["status", "product_id"])
    op.create_index("products_price", "products", ["price_minor", "product_id"])
    op.create_table(
        "stock",
        sa.Column("product_id", sa.Text(collation="C"),
                  sa.ForeignKey("products.product_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("on_hand", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("on_hand >= 0", name="stock_on_hand_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="stock_reserved_not_negative"),
        sa.CheckConstraint("reserved <= on_hand", name="stock_reserved_within_on_hand"),
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
    op.drop_table("stock")
    op.drop_table("products")
