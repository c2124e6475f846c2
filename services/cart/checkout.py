"""Carts after checkout: when an order is confirmed (OrderConfirmed, from the
order service's outbox), the units it bought leave the buyer's cart; units
added since the order was placed stay (the rule of
``services.cart.domain.cart.remaining_after_order``, here as one statement). Runs
as the handler of a durable consumer, inside the tenant transaction that also
records the event in the inbox, so a redelivered event changes nothing."""

from __future__ import annotations

from collections import Counter

from commerce.order.v1 import order_events_pb2
from google.protobuf.message import Message

from services.runtime.sql import Session, Sql

DURABLE = "cart-order-confirmed"
EVENT = order_events_pb2.OrderConfirmed

# Lines whose units were all bought go; others keep what was added since; a cart left
# without lines forgets its currency. (The CTEs share one snapshot: ``left`` sees the
# lines as they were, hence the filter on ``gone``.)
REMOVE_BOUGHT = Sql("""
WITH bought(product_id, quantity) AS (SELECT * FROM unnest($2::text[], $3::bigint[])),
cart AS (SELECT cart_id FROM {schema}.carts WHERE customer_id = $1 FOR UPDATE),
gone AS (DELETE FROM {schema}.cart_lines l USING cart c, bought b
         WHERE l.cart_id = c.cart_id AND l.product_id = b.product_id AND l.quantity <= b.quantity
         RETURNING l.product_id),
kept AS (UPDATE {schema}.cart_lines l SET quantity = l.quantity - b.quantity FROM cart c, bought b
         WHERE l.cart_id = c.cart_id AND l.product_id = b.product_id AND l.quantity > b.quantity
         RETURNING l.product_id)
UPDATE {schema}.carts t
SET update_time = now(),
    currency_code = CASE WHEN EXISTS (SELECT 1 FROM {schema}.cart_lines x WHERE x.cart_id = t.cart_id
                                      AND x.product_id NOT IN (SELECT product_id FROM gone))
                         THEN t.currency_code ELSE '' END
FROM cart c
WHERE t.cart_id = c.cart_id AND (EXISTS (SELECT 1 FROM gone) OR EXISTS (SELECT 1 FROM kept))
""")


def ordered_units(order: Message) -> dict[str, int]:
    units: Counter[str] = Counter()
    for line in getattr(order, "lines", ()):
        units[line.product_id] += line.quantity
    return dict(units)


async def on_order_confirmed(session: Session, event: Message, tenant_id: str) -> None:
    if not isinstance(event, EVENT) or not event.order.customer_id:
        return
    units = ordered_units(event.order)
    await session.execute(REMOVE_BOUGHT, event.order.customer_id, list(units), list(units.values()))
