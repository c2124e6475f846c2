"""Bulk import and export of a tenant's products, in set-based statements.

An import batch is one transaction of five statements whatever its size: the
products (``INSERT ... ON CONFLICT (sku) DO UPDATE`` of those that differ,
``RETURNING`` the row before and after), their stock (new rows, or the on_hand
sent), the outbox rows (ProductsImported in chunks under 1 MB, LowStock crossings),
and the cache invalidation (``pg_notify`` with many ids per payload). Rows are
written in sku order, stock rows in product_id order (the order reservations lock
them in): concurrent imports and checkouts queue instead of deadlocking.
The products' search vectors and the search vocabulary are kept by the database's
triggers (migration c0004).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]

from services.catalog.domain.imports import Accepted
from services.catalog.domain.product import Product
from services.catalog.store.products import CHANNEL, COLUMNS, from_record
from services.runtime.sql import Session, Sql

# What exists of the batch's skus, and how much of each is reserved.
EXISTING = Sql("""
SELECT p.sku, p.product_id, p.status, s.on_hand, s.reserved
FROM {schema}.products p JOIN {schema}.stock s ON s.product_id = p.product_id
WHERE p.sku = ANY($1::text[])
""")

_FIELDS = ("title", "description", "category", "attributes", "price_currency", "price_minor", "status")
UPSERT = Sql(f"""
INSERT INTO {{schema}}.products AS p
    (product_id, sku, title, description, category, attributes, price_currency, price_minor, status, create_time,
     update_time)
SELECT i.product_id, i.sku, i.title, i.description, i.category, i.attributes, i.currency, i.price, i.status, now(),
       now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::bigint[],
            $9::text[]) AS i(product_id, sku, title, description, category, attributes, currency, price, status)
ORDER BY i.sku
ON CONFLICT (sku) DO UPDATE
SET {", ".join(f"{f} = excluded.{f}" for f in _FIELDS)}, update_time = now()
WHERE ({", ".join(f"p.{f}" for f in _FIELDS)}) IS DISTINCT FROM ({", ".join(f"excluded.{f}" for f in _FIELDS)})
RETURNING {COLUMNS}, old.product_id IS NULL AS created
""")

# New stock rows, or the on_hand sent; the table's CHECK refuses on_hand below reserved.
STOCK = Sql("""
INSERT INTO {schema}.stock AS s (product_id, on_hand, reserved, update_time)
SELECT v.product_id, v.on_hand, 0, now() FROM unnest($1::text[], $2::bigint[]) AS v(product_id, on_hand)
ORDER BY v.product_id
ON CONFLICT (product_id) DO UPDATE SET on_hand = excluded.on_hand, update_time = now()
WHERE s.on_hand <> excluded.on_hand
RETURNING s.product_id, coalesce(old.on_hand, 0) - s.reserved AS available_before, s.on_hand - s.reserved AS available
""")

NOTIFY = Sql("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
NOTIFY_PAYLOAD_MAX = 7000  # bytes; PostgreSQL's limit is 8000

_P_COLUMNS = ", ".join(f"p.{c.strip()}" for c in COLUMNS.split(","))
EXPORT = Sql(f"""
SELECT {_P_COLUMNS}, s.on_hand FROM {{schema}}.products p JOIN {{schema}}.stock s ON s.product_id = p.product_id
WHERE p.product_id > $1 ORDER BY p.product_id LIMIT $2
""")


@dataclass(frozen=True)
class Existing:
    product_id: str
    status: str
    on_hand: int
    reserved: int


@dataclass(frozen=True)
class Written:
    created: list[Product]
    updated: list[Product]
    stock_changed: set[str]  # product ids
    low_stock: list[tuple[str, int]]  # (product_id, available) that crossed the threshold downwards


async def existing(session: Session, skus: Sequence[str]) -> dict[str, Existing]:
    rows = await session.fetch(EXISTING, list(skus))
    return {r["sku"]: Existing(r["product_id"], r["status"], r["on_hand"], r["reserved"]) for r in rows}


async def write(session: Session, items: Sequence[tuple[Accepted, str, str]],
                low_stock_threshold: int, existed: set[str]) -> Written:
    """Writes ``items`` (entry, product id to create it with, status to write) in the session's
    transaction; ``existed``: those ids that are of products already there. Raises
    asyncpg.CheckViolationError when an on_hand is now below what is reserved."""
    rows = await session.fetch(
        UPSERT, [pid for _, pid, _ in items], [a.fields.sku for a, _, _ in items],
        [a.fields.title for a, _, _ in items], [a.fields.description for a, _, _ in items],
        [a.fields.category for a, _, _ in items], [json.dumps(dict(a.fields.attributes)) for a, _, _ in items],
        [a.fields.price.currency_code for a, _, _ in items], [a.fields.price.amount_minor for a, _, _ in items],
        [status for _, _, status in items])
    created = [from_record(r) for r in rows if r["created"]]
    updated = [from_record(r) for r in rows if not r["created"]]
    new_ids = {p.fields.sku: p.product_id for p in created}
    ids_of = {p.fields.sku: p.product_id for p in (*created, *updated)}
    stock: dict[str, int] = {}
    for accepted, product_id, _ in items:
        sku = accepted.fields.sku
        if sku in new_ids:
            stock[new_ids[sku]] = accepted.on_hand or 0
        elif accepted.on_hand is not None and (sku in ids_of or product_id in existed):
            # (neither: another import created it alike since we looked; it is left as that one set it)
            stock[ids_of.get(sku, product_id)] = accepted.on_hand
    changed: list[asyncpg.Record] = []
    if stock:
        changed = await session.fetch(STOCK, list(stock), list(stock.values()))
    low = [(r["product_id"], r["available"]) for r in changed
           if r["available"] <= low_stock_threshold < r["available_before"]]
    return Written(created, updated, {r["product_id"] for r in changed}, low)


async def notify_changed(session: Session, product_ids: Sequence[str]) -> None:
    """Every replica's caches drop these products (and the tenant's searches) once this commits."""
    payloads: list[str] = []
    prefix = f"{session.schema}:"
    current: list[str] = []
    size = len(prefix)
    for product_id in product_ids:
        if current and size + len(product_id) + 1 > NOTIFY_PAYLOAD_MAX:
            payloads.append(prefix + ",".join(current))
            current, size = [], len(prefix)
        current.append(product_id)
        size += len(product_id) + 1
    if current:
        payloads.append(prefix + ",".join(current))
    if payloads:
        await session.execute(NOTIFY, CHANNEL, payloads)


async def export_batch(session: Session, after: str, limit: int) -> list[tuple[Product, int]]:
    rows = await session.fetch(EXPORT, after, limit)
    return [(from_record(r), r["on_hand"]) for r in rows]
