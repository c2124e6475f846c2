"""The cart's copy of the catalog, kept current by the catalog's product events.

Every ProductCreated and ProductUpdated (each carries the whole product), and every
product of a ProductsImported (the catalog's bulk import), is stored in the tenant's
``products`` table unless the copy holds that version or a newer one, so events
redelivered or out of order change nothing. Runs as the handler of a durable
consumer, inside the tenant transaction that also records the event in the inbox.
A product created before this consumer existed, or whose event has not arrived yet,
is fetched from the catalog by the read that needs it (services/cart/carts.py).
"""

from __future__ import annotations

from commerce.catalog.v1 import catalog_events_pb2
from google.protobuf.message import Message

from services.cart.convert import product_of
from services.cart.store import products
from services.runtime.sql import Session

DURABLE = "cart-products"
EVENTS = (catalog_events_pb2.ProductCreated, catalog_events_pb2.ProductUpdated, catalog_events_pb2.ProductsImported)


async def on_product_event(session: Session, event: Message, tenant_id: str) -> None:
    if isinstance(event, catalog_events_pb2.ProductsImported):
        await products.keep(session, [product_of(p) for p in (*event.created, *event.updated) if p.product_id])
        return
    if isinstance(event, catalog_events_pb2.ProductCreated | catalog_events_pb2.ProductUpdated) \
            and event.product.product_id:
        await products.keep(session, [product_of(event.product)])
