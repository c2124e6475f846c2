"""Wiring of the catalog service: its database, read caches, servicers, the reservation
sweeper, search re-indexing, the outbox relay and the consumer of confirmed orders."""

from __future__ import annotations

from pathlib import Path

import grpc
from commerce.catalog.v1 import catalog_pb2_grpc, inventory_pb2_grpc
from commerce.tenant.v1 import provisioning_pb2_grpc

from services.catalog import confirmed_orders, inventory_servicer
from services.catalog.cache import ProductCache, SearchCache
from services.catalog.catalog import Catalog
from services.catalog.imports import Importer
from services.catalog.invalidation import CacheInvalidator
from services.catalog.inventory import Inventory
from services.catalog.inventory_servicer import InventoryServicer
from services.catalog.languages import SearchLanguages
from services.catalog.searches import ProductSearch
from services.catalog.servicer import SERVICE, CatalogServicer
from services.catalog.sweeper import ReservationSweeper
from services.runtime import provisioning
from services.runtime.bootstrap import open_database, remote_verifier
from services.runtime.db import Database
from services.runtime.events.consumer import EventConsumer
from services.runtime.events.listener import listener_dsn
from services.runtime.events.relay import OutboxRelay
from services.runtime.provisioning import ProvisioningServicer
from services.runtime.server import App
from services.runtime.settings import Settings
from services.runtime.tokens import TokenVerifier

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
CACHE_ENTRIES = 10_000
SEARCH_CACHE_ENTRIES = 1_000
SWEEP_SECONDS = 2.0


def assemble(db: Database, verifier: TokenVerifier, cache_entries: int = CACHE_ENTRIES,
             sweep_seconds: float = SWEEP_SECONDS, relay: OutboxRelay | None = None,
             orders: EventConsumer | None = None) -> App:
    """The App around an open database; ``build`` uses it, and tests with their own verifier.
    Without a ``relay`` the stock events stay pending in the outbox (tests read them there);
    without ``orders`` (the consumer of OrderConfirmed) reservations are committed only by
    CommitReservation. NATS is deliberately not a health probe: while it is away events
    wait in the outbox, confirmed orders wait on JetStream, and checkout goes on."""
    cache = ProductCache(cache_entries)
    searches = SearchCache(SEARCH_CACHE_ENTRIES if cache_entries else 0)
    invalidator = CacheInvalidator(listener_dsn(db), cache, searches)
    catalog = Catalog(db, cache, searches)
    languages = SearchLanguages(db, searches)
    search = ProductSearch(db, searches, languages.resume)
    servicer = CatalogServicer(catalog, search, Importer(db, cache, searches), languages)
    inventory = Inventory(db)
    sweeper = ReservationSweeper(db, inventory, sweep_seconds)

    def register(server: grpc.aio.Server) -> None:
        catalog_pb2_grpc.add_CatalogServiceServicer_to_server(servicer, server)
        inventory_pb2_grpc.add_InventoryServiceServicer_to_server(InventoryServicer(inventory), server)
        provisioning_pb2_grpc.add_ProvisioningServiceServicer_to_server(ProvisioningServicer(db, MIGRATIONS), server)

    return App(
        name="catalog",
        services=[SERVICE, inventory_servicer.SERVICE, provisioning.SERVICE],
        register=register,
        verifier=verifier,
        probes={"database": db.ping}, facets=db.facets(),
        on_start=[invalidator.start, sweeper.start, languages.start, *([relay.start] if relay else []),
                  *([orders.start] if orders else [])],
        on_stop=[*([orders.stop] if orders else []), *([relay.stop] if relay else []), languages.stop,
                 sweeper.stop, invalidator.stop, db.dispose],
    )


async def build(settings: Settings) -> App:
    db = await open_database(settings, "catalog", MIGRATIONS)
    return assemble(db, remote_verifier(settings, "catalog"), relay=OutboxRelay(db, settings),
                    orders=confirmed_orders.consumer(db, settings, MIGRATIONS))
