"""Wiring of the cart service: its database, the catalog client, the consumers of
product events (the copy of the catalog), of confirmed orders and of deleted users, and
the servicers."""

from __future__ import annotations

from pathlib import Path

import grpc
from commerce.cart.v1 import cart_pb2_grpc
from commerce.tenant.v1 import provisioning_pb2_grpc

from services.cart import catalog_copy, checkout, users
from services.cart.carts import Carts
from services.cart.catalog_client import CatalogClient
from services.cart.servicer import SERVICE, CartServicer
from services.runtime import provisioning
from services.runtime.bootstrap import open_database, remote_verifier
from services.runtime.db import Database
from services.runtime.events.consumer import EventConsumer
from services.runtime.events.naming import subject_pattern
from services.runtime.provisioning import ProvisioningServicer
from services.runtime.server import App
from services.runtime.settings import Settings
from services.runtime.tokens import TokenVerifier

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def assemble(db: Database, verifier: TokenVerifier, settings: Settings, catalog_address: str | None = None) -> App:
    """The App around an open database; ``build`` uses it, and tests with their own
    verifier and catalog. Carts do not need NATS to serve: product changes and confirmed
    orders that arrive while it is away are applied when it returns (meanwhile a product
    the copy does not know is read from the catalog), so it is no health probe."""
    catalog = CatalogClient(catalog_address or settings.address_of("catalog"))
    carts = Carts(db, catalog)
    orders = EventConsumer(db, settings, durable=checkout.DURABLE,
                           subjects=[subject_pattern(checkout.EVENT.DESCRIPTOR)],
                           handler=checkout.on_order_confirmed, script_location=MIGRATIONS)
    products = EventConsumer(db, settings, durable=catalog_copy.DURABLE,
                             subjects=[subject_pattern(event.DESCRIPTOR) for event in catalog_copy.EVENTS],
                             handler=catalog_copy.on_product_event, script_location=MIGRATIONS)
    deleted_users = EventConsumer(db, settings, durable=users.DURABLE,
                                  subjects=[subject_pattern(users.EVENT.DESCRIPTOR)],
                                  handler=users.on_user_deleted, script_location=MIGRATIONS)

    def register(server: grpc.aio.Server) -> None:
        cart_pb2_grpc.add_CartServiceServicer_to_server(CartServicer(carts), server)
        provisioning_pb2_grpc.add_ProvisioningServiceServicer_to_server(ProvisioningServicer(db, MIGRATIONS), server)

    return App(
        name="cart",
        services=[SERVICE, provisioning.SERVICE],
        register=register,
        verifier=verifier,
        probes={"database": db.ping}, facets=db.facets(),
        on_start=[products.start, orders.start, deleted_users.start],
        on_stop=[deleted_users.stop, orders.stop, products.stop, catalog.close, db.dispose],
    )


async def build(settings: Settings) -> App:
    db = await open_database(settings, "cart", MIGRATIONS)
    return assemble(db, remote_verifier(settings, "cart"), settings)
