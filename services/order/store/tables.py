"""Core tables of a tenant schema (declared without a schema: db.tenant() renders
them into the tenant's schema). Mirrors migrations/versions."""

from __future__ import annotations

from sqlalchemy import CHAR, BigInteger, Boolean, Column, DateTime, ForeignKey, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

orders = Table(
    "orders", metadata,
    Column("order_id", Text(collation="C"), primary_key=True),
    Column("request_id", Text, nullable=False),
    Column("customer_id", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency_code", CHAR(3), nullable=False),
    Column("subtotal_minor", BigInteger, nullable=False),
    Column("shipping_minor", BigInteger, nullable=False),
    Column("tax_minor", BigInteger, nullable=False),
    Column("total_minor", BigInteger, nullable=False),
    Column("address", JSONB, nullable=False),
    Column("payment_id", Text, nullable=False),
    Column("failure_reason", Text, nullable=False),
    Column("cancel_reason", Text, nullable=False),
    Column("cancelled_by", Text, nullable=False),
    Column("shipment", JSONB),
    Column("return_info", JSONB),
    Column("saga_step", Text, nullable=False),
    Column("saga_attempts", Integer, nullable=False),
    Column("cancel_requested", Boolean, nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

order_lines = Table(
    "order_lines", metadata,
    Column("order_id", Text(collation="C"), ForeignKey("orders.order_id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("product_id", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price_minor", BigInteger, nullable=False),
)

checkout_requests = Table(
    "checkout_requests", metadata,
    Column("customer_id", Text, primary_key=True),
    Column("request_id", Text, primary_key=True),
    Column("order_id", Text(collation="C"), nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
)

tenant_rules = Table(
    "tenant_rules", metadata,
    Column("kind", Text, primary_key=True),  # 'shipping' (one row) or 'tax'
    Column("country_code", Text, primary_key=True),
    Column("region", Text, primary_key=True),
    Column("shipping_mode", Text, nullable=False),
    Column("base_minor", BigInteger, nullable=False),
    Column("per_kg_minor", BigInteger, nullable=False),
    Column("free_threshold_minor", BigInteger, nullable=False),
    Column("rate_bps", Integer, nullable=False),
)
