"""Confirmed orders take their units off the shelf: the catalog consumes OrderConfirmed
(the order service's outbox, on JetStream) and commits the order's reservation (its id
is the order id), so the shopper never waits for the commit.

Runs as the handler of a durable consumer, inside the tenant transaction that also
records the event in the inbox: a redelivered event changes nothing. An event whose
order id or lines are not a valid reservation's fails every delivery, so after
``max_deliver`` it goes to the dead-letter subject (undecodable ones go there at once);
an event of a tenant without a catalog schema creates the schema first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from commerce.order.v1 import order_events_pb2
from google.protobuf.message import Message

from services.catalog.domain.reservation import confirmed_sale
from services.catalog.inventory import sell_confirmed
from services.catalog.store.reservations import lock_sales
from services.runtime.db import Database
from services.runtime.events.consumer import EventConsumer
from services.runtime.events.naming import subject_pattern
from services.runtime.settings import Settings
from services.runtime.sql import Session

DURABLE = "catalog-order-confirmed"
EVENT = order_events_pb2.OrderConfirmed


async def lock_together(session: Session, events: Sequence[Message], tenant_id: str) -> None:
    """Several confirmed orders applied in one transaction: their reservations, then their
    products' stock rows, are locked first, each in id order — the order every writer of
    reservations and stock keeps (services/catalog/store/reservations.py) — instead of
    reservation by reservation, which could wait for one the sweeper holds while holding a
    stock row it needs (a deadlock)."""
    orders = [event for event in events if isinstance(event, EVENT)]
    await lock_sales(session, [o.order.order_id for o in orders],
                     [line.product_id for o in orders for line in o.order.lines])


async def on_order_confirmed(session: Session, event: Message, tenant_id: str) -> None:
    if not isinstance(event, EVENT):  # another type on the subject: not ours to apply
        return
    order = event.order
    reservation_id, lines = confirmed_sale(order.order_id, [(line.product_id, line.quantity) for line in order.lines])
    await sell_confirmed(session, tenant_id, reservation_id, lines)


def consumer(db: Database, settings: Settings, script_location: Path, *, durable: str = DURABLE,
             **options: Any) -> EventConsumer:
    """The catalog's consumer of OrderConfirmed (``options``: EventConsumer's tuning, for tests)."""
    return EventConsumer(db, settings, durable=durable, subjects=[subject_pattern(EVENT.DESCRIPTOR)],
                         handler=on_order_confirmed, prepare=lock_together, script_location=script_location,
                         **options)
