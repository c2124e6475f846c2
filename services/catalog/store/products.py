"""Products in the tenant schema. Single writes go the SQLAlchemy Core path; every
write also queues a ``pg_notify`` in its transaction, so every replica's read caches
drop the product (and the tenant's cached searches) the moment the change commits.
A read by id (a cache miss of GetProduct, on the shopper's path) is one prepared
statement (``read``). Searches are in store/search.py, imports in store/imports.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Row, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.domain.product import Money, Product, ProductFields, ProductStatus
from services.catalog.store.tables import products
from services.runtime.errors import AlreadyExists
from services.runtime.sql import Session, Sql

CHANNEL = "catalog_products"
_UNIQUE_VIOLATION = "23505"
# What the prepared statements select of a product (``from_record`` reads it).
COLUMNS = ("product_id, sku, title, description, category, attributes::text AS attributes, price_currency, "
           "price_minor, status, create_time, update_time")
READ = Sql(f"SELECT {COLUMNS} FROM {{schema}}.products WHERE product_id = $1")


def _values(fields: ProductFields) -> dict[str, Any]:
    return {
        "sku": fields.sku, "title": fields.title, "description": fields.description,
        "category": fields.category, "attributes": dict(fields.attributes),
        "price_currency": fields.price.currency_code, "price_minor": fields.price.amount_minor,
        "status": fields.status.value,
    }


def _product(values: Mapping[Any, Any], attributes: Mapping[str, str]) -> Product:
    fields = ProductFields(
        sku=values["sku"], title=values["title"], description=values["description"], category=values["category"],
        attributes=MappingProxyType(dict(attributes)), price=Money(values["price_currency"], values["price_minor"]),
        status=ProductStatus(values["status"]),
    )
    return Product(values["product_id"], fields, values["create_time"], values["update_time"])


def product_of(row: Row[Any]) -> Product:
    return _product(row._mapping, row.attributes)


def from_record(row: asyncpg.Record) -> Product:
    """A product from an asyncpg row that selected ``COLUMNS``."""
    return _product(row, json.loads(row["attributes"]))


async def read(session: Session, product_id: str) -> Product | None:
    """One product by id (a prepared statement)."""
    row = await session.fetchrow(READ, product_id)
    return None if row is None else from_record(row)


def sku_exists(sku: str) -> AlreadyExists:
    return AlreadyExists("a product with this sku already exists", reason="SKU_EXISTS", metadata={"sku": sku})


async def insert(conn: AsyncConnection, product_id: str, fields: ProductFields) -> Product:
    """Raises AlreadyExists (SKU_EXISTS) when the tenant has the sku already."""
    row = (await conn.execute(
        pg_insert(products)
        .values(product_id=product_id, create_time=func.now(), update_time=func.now(), **_values(fields))
        .on_conflict_do_nothing(index_elements=[products.c.sku])
        .returning(*products.c)
    )).first()
    if row is None:
        raise sku_exists(fields.sku)
    await notify_changed(conn, product_id)
    return product_of(row)


async def get(conn: AsyncConnection, product_id: str, *, for_update: bool = False) -> Product | None:
    stmt = select(products).where(products.c.product_id == product_id)
    row = (await conn.execute(stmt.with_for_update() if for_update else stmt)).first()
    return None if row is None else product_of(row)


async def update(conn: AsyncConnection, product_id: str, fields: ProductFields) -> Product:
    try:
        row = (await conn.execute(
            products.update().where(products.c.product_id == product_id)
            .values(update_time=func.now(), **_values(fields)).returning(*products.c)
        )).one()
    except IntegrityError as exc:
        if getattr(exc.orig, "pgcode", None) == _UNIQUE_VIOLATION:
            raise sku_exists(fields.sku) from exc
        raise
    await notify_changed(conn, product_id)
    return product_of(row)


async def notify_changed(conn: AsyncConnection, product_id: str) -> None:
    """Delivered to every listening replica when (and only if) the transaction commits."""
    assert conn.sync_connection is not None
    schema = conn.sync_connection.get_execution_options()["schema_translate_map"][None]
    await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                       {"channel": CHANNEL, "payload": f"{schema}:{product_id}"})
