"""Stock reservations for checkout: one row per reservation (its id is the
caller's, the order id), one row per reserved product.

Revision ID: c0002
Revises: c0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c0002"
down_revision = "c0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("reservation_id", sa.Text(collation="C"), primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("state IN ('HELD', 'COMMITTED', 'RELEASED', 'EXPIRED')", name="reservations_state"),
    )
    # The sweeper's question: which held reservations are past their expiry?
    op.create_index("reservations_held_expiry", "reservations", ["expire_time"],
                    postgresql_where=sa.text("state = 'HELD'"))
    op.create_table(
        "reservation_lines",
        sa.Column("reservation_id", sa.Text(collation="C"),
                  sa.ForeignKey("reservations.reservation_id", ondelete="CASCADE"), primary_key=True),
        # No foreign key to products: the stock row updated in the same transaction proves
        # the product exists, without a second lock on the product row.
        sa.Column("product_id", sa.Text(collation="C"), primary_key=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.CheckConstraint("quantity > 0", name="reservation_lines_quantity_positive"),
    )


def downgrade() -> None:
    op.drop_table("reservation_lines")
    op.drop_table("reservations")
