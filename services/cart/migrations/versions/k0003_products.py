"""The cart's copy of the catalog: what it needs to price a line, per product, kept
current by the catalog's ProductCreated / ProductUpdated events (and filled by
GetProduct for a product it has not heard of yet).

Revision ID: k0003
Revises: k0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "k0003"
down_revision = "k0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "products",
        sa.Column("product_id", sa.Text, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        # The catalog's status name: DRAFT, ACTIVE, ARCHIVED (UNSPECIFIED if it ever sends none).
        # Every status is kept; shoppers are shown only what the catalog shows them.
        sa.Column("status", sa.Text, nullable=False),
        # The "weight_grams" attribute; 0 when the product states none.
        sa.Column("weight_grams", sa.BigInteger, nullable=False),
        # The catalog's update_time: the version. A row is only replaced by a newer one.
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("products")
