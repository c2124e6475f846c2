"""Core tables of a tenant schema that the SQLAlchemy paths use (declared without a
schema: db.tenant() renders them into the caller's tenant schema). Mirrors
migrations/versions; reservations and their lines are only reached by the prepared
statements of store/reservations.py."""

from __future__ import annotations

from sqlalchemy import CHAR, BigInteger, Column, DateTime, ForeignKey, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

products = Table(
    "products", metadata,
    Column("product_id", Text(collation="C"), primary_key=True),
    Column("sku", Text, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("category", Text, nullable=False),
    Column("attributes", JSONB, nullable=False),
    Column("price_currency", CHAR(3), nullable=False),
    Column("price_minor", BigInteger, nullable=False),
    Column("status", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

stock = Table(
    "stock", metadata,
    Column("product_id", Text(collation="C"), ForeignKey("products.product_id"), primary_key=True),
    Column("on_hand", BigInteger, nullable=False),
    Column("reserved", BigInteger, nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)
