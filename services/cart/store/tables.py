"""Core tables of a tenant schema (declared without a schema: db.tenant() renders
them into the caller's tenant schema). Mirrors migrations/versions."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Integer, MetaData, Table, Text

metadata = MetaData()

carts = Table(
    "carts", metadata,
    Column("cart_id", Text, primary_key=True),
    Column("customer_id", Text, nullable=False, unique=True),
    Column("currency_code", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

cart_lines = Table(
    "cart_lines", metadata,
    Column("cart_id", Text, ForeignKey("carts.cart_id"), primary_key=True),
    Column("product_id", Text, primary_key=True),
    Column("quantity", BigInteger, nullable=False),
    Column("position", Integer, nullable=False),
)
