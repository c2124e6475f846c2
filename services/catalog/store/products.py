"""Products in the tenant schema. Writes and lists go the SQLAlchemy Core path; every
write also queues a ``pg_notify`` in its transaction, so every replica's read cache
drops the product the moment the change commits. A read by id (a cache miss of
GetProduct, on the shopper's path) is one prepared statement (``read``)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from sqlalchemy import Row, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.domain.listing import ListQuery
from services.catalog.domain.product import Money, Product, ProductFields, ProductStatus
from services.catalog.domain.visibility import ALL_STATUSES
from services.catalog.store.tables import products
from services.runtime.errors import AlreadyExists
from services.runtime.sql import Session, Sql

CHANNEL = "catalog_products"
_UNIQUE_VIOLATION = "23505"
READ = Sql("SELECT product_id, sku, title, description, category, attributes::text AS attributes, price_currency, "
           "price_minor, status, create_time, update_time FROM {schema}.products WHERE product_id = $1")


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


async def read(session: Session, product_id: str) -> Product | None:
    """One product by id (a prepared statement)."""
    row = await session.fetchrow(READ, product_id)
    return None if row is None else _product(row, json.loads(row["attributes"]))


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


async def list_page(conn: AsyncConnection, query: ListQuery) -> Sequence[Product]:
    """Up to query.limit + 1 products (one more tells whether another page exists)."""
    c, f = products.c, query.filter
    stmt = select(products)
    if f.statuses != ALL_STATUSES:
        stmt = stmt.where(c.status.in_(sorted(s.value for s in f.statuses)))
    if f.query:
        stmt = stmt.where(or_(c.sku.icontains(f.query, autoescape=True), c.title.icontains(f.query, autoescape=True),
                              c.description.icontains(f.query, autoescape=True)))
    if f.category:
        stmt = stmt.where(c.category == f.category)
    if f.min_price_minor:
        stmt = stmt.where(c.price_minor >= f.min_price_minor)
    if f.max_price_minor:
        stmt = stmt.where(c.price_minor <= f.max_price_minor)
    if query.after is not None:
        stmt = stmt.where(c.product_id > query.after)
    rows = await conn.execute(stmt.order_by(c.product_id).limit(query.limit + 1))
    return [product_of(r) for r in rows]


async def notify_changed(conn: AsyncConnection, product_id: str) -> None:
    """Delivered to every listening replica when (and only if) the transaction commits."""
    assert conn.sync_connection is not None
    schema = conn.sync_connection.get_execution_options()["schema_translate_map"][None]
    await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                       {"channel": CHANNEL, "payload": f"{schema}:{product_id}"})
