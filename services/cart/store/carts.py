"""Carts, their lines and the answers remembered under request_ids, on the hot path
(asyncpg statements prepared once per connection, services/runtime/sql.py).

- ``read``: the cart, its lines and the copy's products of them, in one statement.
- ``lock``: the same, with the cart row locked for the transaction and the answer
  stored under the request_id, in one statement. Concurrent changes of one
  shopper's cart (and retries of one request, whose ids are the shopper's) queue on
  that lock.
- ``create``: the shopper's empty cart, for a first add (then ``lock`` again).
- ``write``: the lines that changed, the cart row and the answer, in one statement.
- ``peek``: before any lock or catalog call, the answer stored under a request_id,
  the copy's product and its line's quantity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg  # type: ignore[import-untyped]

from services.cart.domain.cart import Line, StoredCart
from services.cart.domain.catalog import Product
from services.cart.domain.ids import new_cart_id
from services.cart.store import products
from services.runtime.idempotency import IdempotencyKey
from services.runtime.sql import Session, Sql

_CART_AND_LINES = f"""
c.cart_id, c.currency_code, c.update_time,
l.product_id AS line_product, l.quantity, l.position, {products.COLUMNS}"""
_LINES_AND_PRODUCTS = """
LEFT JOIN {schema}.cart_lines l ON l.cart_id = c.cart_id
LEFT JOIN {schema}.products p ON p.product_id = l.product_id"""

READ = Sql(f"""
SELECT {_CART_AND_LINES}
FROM {{schema}}.carts c {_LINES_AND_PRODUCTS}
WHERE c.customer_id = $1
ORDER BY l.position
""")

# In READ COMMITTED a statement that waited for a row lock returns the newest version of
# the locked row, but reads every other row as of its start: the lines and the answer
# could then be older than the cart they go with. ``fresh`` tells: the locked row's
# version (xmin) against the version this statement's snapshot sees. Every change of
# lines also updates the cart row, so a stale read is caught and read again (the lock
# now held, nothing can move).
LOCK = Sql(f"""
WITH c AS MATERIALIZED (
    SELECT cart_id, currency_code, update_time, xmin::text AS version
    FROM {{schema}}.carts WHERE customer_id = $1 FOR UPDATE
)
SELECT now() AS now,
       c.version IS NOT DISTINCT FROM (SELECT xmin::text FROM {{schema}}.carts WHERE customer_id = $1) AS fresh,
       k.method, k.fingerprint, k.response, {_CART_AND_LINES}
FROM (VALUES (1)) AS one (x)
LEFT JOIN c ON true
LEFT JOIN {{schema}}.idempotency_keys k ON k.request_id = $2 {_LINES_AND_PRODUCTS}
ORDER BY l.position
""")

CREATE = Sql("""
INSERT INTO {schema}.carts (cart_id, customer_id, currency_code, create_time, update_time)
VALUES ($1, $2, '', now(), now())
ON CONFLICT (customer_id) DO NOTHING
""")

WRITE = Sql("""
WITH gone AS (
    DELETE FROM {schema}.cart_lines WHERE cart_id = $1 AND product_id = ANY($2::text[])
), put AS (
    INSERT INTO {schema}.cart_lines (cart_id, product_id, quantity, position)
    SELECT $1::text, * FROM unnest($3::text[], $4::bigint[], $5::int[])
    ON CONFLICT (cart_id, product_id) DO UPDATE SET quantity = EXCLUDED.quantity, position = EXCLUDED.position
), answer AS (
    INSERT INTO {schema}.idempotency_keys (request_id, method, fingerprint, response)
    SELECT $7::text, $8::text, $9::text, $10::bytea WHERE $7::text IS NOT NULL
    ON CONFLICT (request_id) DO NOTHING
)
UPDATE {schema}.carts SET currency_code = $6, update_time = now() WHERE cart_id = $1 AND $11::boolean
""")

PEEK = Sql(f"""
SELECT k.method, k.fingerprint, k.response, l.quantity, {products.COLUMNS}
FROM (VALUES (1)) AS one (x)
LEFT JOIN {{schema}}.idempotency_keys k ON k.request_id = $1
LEFT JOIN {{schema}}.products p ON p.product_id = $2
LEFT JOIN {{schema}}.carts c ON c.customer_id = $3
LEFT JOIN {{schema}}.cart_lines l ON l.cart_id = c.cart_id AND l.product_id = $2
""")


@dataclass(frozen=True)
class StoredAnswer:
    """The row remembered under a request_id (services/runtime/idempotency.py)."""

    method: str
    fingerprint: str
    response: bytes


@dataclass(frozen=True)
class Found:
    cart: StoredCart | None
    products: dict[str, Product]  # the copy's products of the cart's lines, those it knows


@dataclass(frozen=True)
class Locked(Found):
    now: datetime  # the transaction's time: the cart's update_time once written
    answer: StoredAnswer | None


@dataclass(frozen=True)
class Peeked:
    answer: StoredAnswer | None
    product: Product | None  # as the copy knows it
    quantity: int  # of the product's line in the shopper's cart; 0 without one


def _answer(row: asyncpg.Record) -> StoredAnswer | None:
    return None if row["method"] is None else StoredAnswer(row["method"], row["fingerprint"], row["response"])


def _found(customer_id: str, rows: Sequence[asyncpg.Record]) -> Found:
    if not rows or rows[0]["cart_id"] is None:
        return Found(None, {})
    first = rows[0]
    lines = tuple(Line(r["line_product"], r["quantity"], r["position"]) for r in rows if r["line_product"])
    known = {product.product_id: product for product in map(products.product_of, rows) if product is not None}
    return Found(StoredCart(first["cart_id"], customer_id, first["currency_code"], lines, first["update_time"]),
                 known)


async def read(session: Session, customer_id: str) -> Found:
    return _found(customer_id, await session.fetch(READ, customer_id))


async def lock(session: Session, customer_id: str, request_id: str | None) -> Locked:
    """The shopper's cart locked for the transaction (None when there is none) and the
    answer remembered under ``request_id``."""
    rows = await session.fetch(LOCK, customer_id, request_id)
    if not rows[0]["fresh"]:  # waited for the lock while the cart changed: read it again
        rows = await session.fetch(LOCK, customer_id, request_id)
    found = _found(customer_id, rows)
    return Locked(found.cart, found.products, rows[0]["now"], _answer(rows[0]))


async def create(session: Session, customer_id: str) -> None:
    """An empty cart for the shopper, unless one was created meanwhile (this waits
    for a concurrent creator to finish): ``lock`` it next."""
    await session.execute(CREATE, new_cart_id(), customer_id)


async def write(session: Session, cart: StoredCart | None, saved: StoredCart | None,
                key: IdempotencyKey | None, answer: bytes) -> None:
    """``saved``, a new state of the locked ``cart`` (its changed lines, its currency, the
    cart row's update_time: now), unless None; and ``answer`` under ``key``, if given."""
    if saved is None and key is None:
        return
    old = {line.product_id: line for line in cart.lines} if cart is not None else {}
    new = {line.product_id: line for line in saved.lines} if saved is not None else old
    changed = [line for pid, line in new.items() if old.get(pid) != line]
    await session.execute(
        WRITE, saved.cart_id if saved is not None else "", [pid for pid in old if pid not in new],
        [line.product_id for line in changed], [line.quantity for line in changed],
        [line.position for line in changed], saved.currency_code if saved is not None else "",
        None if key is None else key.request_id, None if key is None else key.method,
        None if key is None else key.fingerprint, answer if key is not None else None, saved is not None)


async def peek(session: Session, customer_id: str, product_id: str, request_id: str | None) -> Peeked:
    row = await session.fetchrow(PEEK, request_id, product_id, customer_id)
    assert row is not None  # one row, always
    return Peeked(_answer(row), products.product_of(row), row["quantity"] or 0)
