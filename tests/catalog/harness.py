"""What the catalog's tests and the cart's (which run a catalog to price from)
share: an in-process catalog server on a free port, tenant provisioning as the
tenant service does it, row counts and outbox rows behind a service's back, and the
google.rpc details of a failed call."""

from __future__ import annotations

import grpc
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc
from sqlalchemy import text

from services.catalog.app import MIGRATIONS, assemble
from services.runtime.bootstrap import open_database
from services.runtime.db import Database, schema_for
from services.runtime.events.relay import OutboxRelay
from services.runtime.server import Running, create_server
from services.runtime.settings import Settings
from tests.tokens import TestKeys

Metadata = tuple[tuple[str, str], ...]


async def start_catalog(settings: Settings, keys: TestKeys, probe_seconds: float = 0.2, *,
                        events: bool = False, stall_seconds: float = 5.0) -> tuple[Running, Database]:
    """``events``: with the outbox relay, so the catalog's events reach NATS (as the
    cart's copy of the catalog needs); without, they stay in the outbox."""
    db = await open_database(settings, "catalog", MIGRATIONS)
    relay = OutboxRelay(db, settings) if events else None
    running = await create_server(assemble(db, keys.verifier(), relay=relay), "127.0.0.1:0", probe_seconds,
                                  stall_seconds=stall_seconds)
    return running, db


async def provision(channel: grpc.aio.Channel, keys: TestKeys, tenant: str) -> None:
    """Creates the tenant's schema in the service behind ``channel``, with a service token."""
    stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
    await stub.ProvisionTenant(provisioning_pb2.ProvisionTenantRequest(tenant_id=tenant, currency_code="USD"),
                               metadata=keys.metadata(tenant="platform", roles=["service"]))


async def count_rows(db: Database, tenant: str, table: str) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(text(f'SELECT count(*) FROM "{schema_for(tenant)}".{table}')) or 0)


async def outbox(db: Database, tenant: str) -> list[tuple[str, str, bytes]]:
    """(event_type, subject, payload) of every outbox row, oldest first."""
    async with db.engine.connect() as conn:
        rows = await conn.execute(text(
            f'SELECT event_type, subject, payload FROM "{schema_for(tenant)}".outbox ORDER BY position'))
        return [(r.event_type, r.subject, bytes(r.payload)) for r in rows]


