"""The order statements on the shopper's path, each one round trip (services/runtime/sql.py):
accept an order, finish its checkout (with its event and the change notice), read an
order with its lines, and the tenant's shipping and tax rules.

Every write that changes an order NOTIFYs ``order_changes`` ("<tenant>:<order_id>") in
its own statement, the one NOTIFY of its transaction (WatchOrder and callers waiting
for a saga run elsewhere listen to it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from services.order.domain.order import Order
from services.order.domain.saga import SagaState, Step
from services.order.domain.totals import Rules, ShippingRule, TaxRate
from services.order.store.rows import order_of, saga_of
from services.runtime.events.outbox import COLUMNS, OutboxRow, values_sql
from services.runtime.sql import Session, Sql

CHANNEL = "order_changes"

# The order and its lines, claimed by (customer, request_id): a concurrent twin of the
# same request waits on the unique key, then inserts nothing (and the caller reads theirs).
ACCEPT = Sql("""
WITH o AS (
  INSERT INTO {schema}.orders (order_id, request_id, customer_id, email, status, currency_code, subtotal_minor,
    shipping_minor, tax_minor, total_minor, address, payment_id, failure_reason, cancel_reason, cancelled_by,
    saga_step, saga_attempts, cancel_requested, lease_until, create_time, update_time)
  VALUES ($1, $2, $3, $4, 'PENDING', $5, $6::bigint, $7::bigint, $8::bigint,
    $6::bigint + $7::bigint + $8::bigint, $9::jsonb, '', '', '', '',
    'RESERVE', 0, false, now() + make_interval(secs => $10), $11, $11)
  ON CONFLICT (customer_id, request_id) DO NOTHING
  RETURNING order_id),
l AS (
  INSERT INTO {schema}.order_lines (order_id, position, product_id, sku, title, quantity, unit_price_minor)
  SELECT o.order_id, x.position - 1, x.product_id, x.sku, x.title, x.quantity, x.unit_price_minor
  FROM o, unnest($12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[])
       WITH ORDINALITY AS x(product_id, sku, title, quantity, unit_price_minor, position))
SELECT order_id FROM o
""")

ORDER_OF_REQUEST = Sql("SELECT order_id FROM {schema}.orders WHERE customer_id = $1 AND request_id = $2")

# Checkout's last write: the outcome, the saga done, the lease given back, the event of
# the outcome, the change notice; only while the checkout is still this runner's to end
# (still at a checkout step, no cancellation asked for meanwhile).
FINISH = Sql(f"""
WITH done AS (
  UPDATE {{schema}}.orders SET status = $2, failure_reason = $3, payment_id = $4, saga_step = 'DONE',
    saga_attempts = 0, lease_until = NULL, update_time = $5
  WHERE order_id = $1 AND saga_step = ANY($6::text[]) AND NOT cancel_requested
  RETURNING order_id),
ev AS (
  INSERT INTO {{schema}}.outbox ({COLUMNS}) SELECT {values_sql(8)} FROM done)
SELECT pg_notify('{CHANNEL}', $7) FROM done
""")

GET = Sql("""
SELECT o.*, l.product_ids, l.skus, l.titles, l.quantities, l.unit_prices
FROM {schema}.orders o,
  LATERAL (SELECT array_agg(product_id ORDER BY position) AS product_ids, array_agg(sku ORDER BY position) AS skus,
                  array_agg(title ORDER BY position) AS titles, array_agg(quantity ORDER BY position) AS quantities,
                  array_agg(unit_price_minor ORDER BY position) AS unit_prices
           FROM {schema}.order_lines WHERE order_id = o.order_id) l
WHERE o.order_id = $1
""")

RULES = Sql("SELECT kind, country_code, region, shipping_mode, base_minor, per_kg_minor, free_threshold_minor, "
            "rate_bps FROM {schema}.tenant_rules")


def change_notice(tenant_id: str, order_id: str) -> str:
    return f"{tenant_id}:{order_id}"


async def accept(session: Session, order: Order, lease_seconds: float) -> bool:
    """Writes the new order (PENDING, saga at RESERVE, leased); False when its request_id
    was already used by this customer (nothing written)."""
    t = order.totals
    lines = order.lines
    accepted = await session.fetchval(
        ACCEPT, order.order_id, order.request_id, order.customer_id, order.email, t.currency_code,
        t.subtotal_minor, t.shipping_minor, t.tax_minor, json.dumps(asdict(order.address)), float(lease_seconds),
        order.create_time, [line.product_id for line in lines], [line.sku for line in lines],
        [line.title for line in lines], [line.quantity for line in lines], [line.unit_price_minor for line in lines])
    return accepted is not None


async def order_of_request(session: Session, customer_id: str, request_id: str) -> str | None:
    found = await session.fetchval(ORDER_OF_REQUEST, customer_id, request_id)
    return str(found) if found is not None else None


async def finish(session: Session, tenant_id: str, order: Order, from_steps: frozenset[Step],
                 event: OutboxRow) -> bool:
    """Ends the checkout of ``order`` (its status, failure_reason and payment_id as given, its
    update_time as given) with ``event``; False when the saga was no longer at one of
    ``from_steps`` or a cancellation was asked for (nothing written)."""
    notified = await session.fetch(
        FINISH, order.order_id, order.status.value, order.failure_reason, order.payment_id, order.update_time,
        [step.value for step in from_steps], change_notice(tenant_id, order.order_id), *event.args())
    if not notified:
        return False
    session.add_events(event)
    return True


async def get(session: Session, order_id: str) -> tuple[Order, SagaState] | None:
    row = await session.fetchrow(GET, order_id)
    if row is None:
        return None
    return order_of(row, _lines(row)), saga_of(row)


def _lines(row: Mapping[str, Any]) -> list[tuple[str, str, str, int, int]]:
    ids = row["product_ids"] or []
    return list(zip(ids, row["skus"], row["titles"], row["quantities"], row["unit_prices"], strict=True))


async def rules(session: Session) -> Rules:
    shipping = ShippingRule()
    taxes: list[TaxRate] = []
    for r in await session.fetch(RULES):
        if r["kind"] == "shipping":
            shipping = ShippingRule(r["shipping_mode"], r["base_minor"], r["per_kg_minor"], r["free_threshold_minor"])
        else:
            taxes.append(TaxRate(r["country_code"], r["region"], r["rate_bps"]))
    return Rules(shipping, tuple(taxes))


def stamped(order: Order, now: datetime) -> Order:
    return replace(order, update_time=now)
