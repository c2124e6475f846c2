"""The cart's copy of the catalog's products (table ``products`` of each tenant schema).

A row is only ever replaced by a newer version of its product (the catalog's
update_time): a redelivered or late event, or a GetProduct answer older than an
event already applied, changes nothing. Every status is kept; what a shopper may
see of it is the domain's rule (services/cart/domain/catalog.py ``shown``).
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg  # type: ignore[import-untyped]

from services.cart.domain.catalog import Money, Product, Status
from services.runtime.sql import Session, Sql

# The columns ``product_of`` reads, for statements that join ``products p``.
COLUMNS = ("p.product_id AS p_id, p.sku AS p_sku, p.title AS p_title, p.currency_code AS p_currency, "
           "p.amount_minor AS p_amount, p.status AS p_status, p.weight_grams AS p_grams, p.update_time AS p_version")

KEEP = Sql("""
INSERT INTO {schema}.products AS p
    (product_id, sku, title, currency_code, amount_minor, status, weight_grams, update_time)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
                     $8::timestamptz[])
ON CONFLICT (product_id) DO UPDATE
SET sku = EXCLUDED.sku, title = EXCLUDED.title, currency_code = EXCLUDED.currency_code,
    amount_minor = EXCLUDED.amount_minor, status = EXCLUDED.status, weight_grams = EXCLUDED.weight_grams,
    update_time = EXCLUDED.update_time
WHERE p.update_time < EXCLUDED.update_time
""")


def product_of(row: asyncpg.Record) -> Product | None:
    """The product in a row that selected ``COLUMNS``; None when the copy has none."""
    if row["p_id"] is None:
        return None
    return Product(row["p_id"], row["p_sku"], row["p_title"], Money(row["p_currency"], row["p_amount"]),
                   Status(row["p_status"]), row["p_grams"], row["p_version"])


async def keep(session: Session, products: Iterable[Product]) -> None:
    """Stores each product unless the copy holds the same or a newer version of it."""
    newest: dict[str, Product] = {}
    for product in products:  # one row per product: an INSERT may touch a row only once
        if product.product_id not in newest or newest[product.product_id].version < product.version:
            newest[product.product_id] = product
    if not newest:
        return
    rows = list(newest.values())
    await session.execute(
        KEEP, [p.product_id for p in rows], [p.sku for p in rows], [p.title for p in rows],
        [p.price.currency_code for p in rows], [p.price.amount_minor for p in rows], [p.status.value for p in rows],
        [p.weight_grams for p in rows], [p.version for p in rows])
