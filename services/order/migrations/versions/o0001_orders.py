"""Tenant schema of the order service: orders, their lines, checkout requests
(idempotency of PlaceOrder), shipping and tax rules, idempotency keys, outbox.

Revision ID: o0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from services.runtime.events.schema import create_event_tables

revision = "o0001"
down_revision = None
branch_labels = None
depends_on = None

STATUSES = ("PENDING", "RESERVED", "PAID", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED", "FAILED",
            "RETURN_REQUESTED", "RETURNED", "REFUNDED")
STEPS = ("RESERVE", "AUTHORIZE", "CAPTURE", "COMMIT", "COMPENSATE", "CANCEL", "RETURN", "DONE")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "orders",
        sa.Column("order_id", sa.Text(collation="C"), primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("currency_code", sa.CHAR(3), nullable=False),
        sa.Column("subtotal_minor", sa.BigInteger, nullable=False),
        sa.Column("shipping_minor", sa.BigInteger, nullable=False),
        sa.Column("tax_minor", sa.BigInteger, nullable=False),
        sa.Column("total_minor", sa.BigInteger, nullable=False),
        sa.Column("address", JSONB, nullable=False),
        sa.Column("payment_id", sa.Text, nullable=False, server_default=""),
        sa.Column("failure_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("cancel_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("cancelled_by", sa.Text, nullable=False, server_default=""),
        sa.Column("shipment", JSONB),
        sa.Column("return_info", JSONB),
        # What the saga must do next (see services/order/domain/saga.py); DONE when nothing.
        sa.Column("saga_step", sa.Text, nullable=False),
        sa.Column("saga_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        # The worker running the saga holds it until then; the recovery worker takes it over after.
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(_in("status", STATUSES), name="orders_status"),
        sa.CheckConstraint(_in("saga_step", STEPS), name="orders_saga_step"),
        sa.CheckConstraint("subtotal_minor >= 0 AND shipping_minor >= 0 AND tax_minor >= 0 "
                           "AND total_minor = subtotal_minor + shipping_minor + tax_minor", name="orders_totals"),
        sa.UniqueConstraint("customer_id", "request_id", name="orders_customer_request_key"),
    )
    op.create_index("orders_customer", "orders", ["customer_id", "order_id"])
    op.create_index("orders_status", "orders", ["status", "order_id"])
    op.create_index("orders_unfinished", "orders", ["update_time"], postgresql_where=sa.text("saga_step <> 'DONE'"))
    op.create_table(
        "order_lines",
        sa.Column("order_id", sa.Text(collation="C"), sa.ForeignKey("orders.order_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("product_id", sa.Text, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("unit_price_minor", sa.BigInteger, nullable=False),
        sa.CheckConstraint("quantity BETWEEN 1 AND 1000", name="order_lines_quantity"),
        sa.CheckConstraint("unit_price_minor >= 0", name="order_lines_price"),
    )
    # PlaceOrder's idempotency: concurrent retries of one request race on this key.
    op.create_table(
        "checkout_requests",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("request_id", sa.Text, primary_key=True),
        sa.Column("order_id", sa.Text(collation="C"), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "tenant_rules",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("country_code", sa.Text, primary_key=True, server_default=""),
        sa.Column("region", sa.Text, primary_key=True, server_default=""),
        sa.Column("shipping_mode", sa.Text, nullable=False, server_default="FLAT"),
        sa.Column("base_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("per_kg_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("free_threshold_minor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rate_bps", sa.Integer, nullable=False, server_default="0"),
        sa.CheckConstraint("kind IN ('shipping', 'tax')", name="tenant_rules_kind"),
        sa.CheckConstraint("shipping_mode IN ('FLAT', 'WEIGHT')", name="tenant_rules_mode"),
        sa.CheckConstraint("base_minor >= 0 AND per_kg_minor >= 0 AND free_threshold_minor >= 0 "
                           "AND rate_bps BETWEEN 0 AND 10000", name="tenant_rules_amounts"),
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
    create_event_tables(op)


def downgrade() -> None:
    for table in ("inbox", "outbox", "idempotency_keys", "tenant_rules", "checkout_requests", "order_lines",
                  "orders"):
        op.drop_table(table)
