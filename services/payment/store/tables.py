"""Core tables of a tenant schema (declared without a schema: db.tenant() renders
them into the caller's tenant schema). Mirrors migrations/versions."""

from __future__ import annotations

from sqlalchemy import CHAR, BigInteger, Column, DateTime, ForeignKey, MetaData, Table, Text

metadata = MetaData()

payments = Table(
    "payments", metadata,
    Column("payment_id", Text(collation="C"), primary_key=True),
    Column("order_id", Text, nullable=False),
    # The AuthorizePayment / ChargePayment request_id: one payment per such request, ever.
    Column("authorize_request_id", Text, nullable=False, unique=True),
    # What that request asked for (domain/request_ids.py); "" on rows older than the column.
    Column("request_fingerprint", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency_code", CHAR(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("captured_minor", BigInteger, nullable=False),
    Column("refunded_minor", BigInteger, nullable=False),
    Column("provider", Text, nullable=False),
    Column("provider_reference", Text, nullable=False),
    Column("decline_reason", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

refunds = Table(
    "refunds", metadata,
    Column("refund_id", Text(collation="C"), primary_key=True),
    Column("payment_id", Text(collation="C"), ForeignKey("payments.payment_id"), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("provider_reference", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
)

provider_events = Table(
    "provider_events", metadata,
    Column("provider", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("type", Text, nullable=False),
    Column("payment_id", Text),
    Column("outcome", Text, nullable=False),
    Column("receive_time", DateTime(timezone=True), nullable=False),
)
