"""The tenant service's integration events, written to the outbox in the
transaction of the change they report (services/runtime/events/outbox.py).
Tenant events go to the ``platform`` schema's outbox, user events to the
tenant schema's. TenantSuspended and UserDeleted also revoke tokens at every
service (services/runtime/revocations.py)."""

from __future__ import annotations

from commerce.tenant.v1 import tenant_events_pb2 as ev
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.events.outbox import emit
from services.tenant.convert import tenant_message, user_message
from services.tenant.domain.tenant import Tenant
from services.tenant.domain.user import User
from services.tenant.store.platform import SCHEMA


async def tenant_created(conn: AsyncConnection, tenant: Tenant) -> None:
    await emit(conn, ev.TenantCreated(tenant=tenant_message(tenant)), tenant_id=tenant.tenant_id,
               aggregate_id=tenant.tenant_id, schema=SCHEMA)


async def tenant_suspended(conn: AsyncConnection, tenant: Tenant) -> None:
    await emit(conn, ev.TenantSuspended(tenant=tenant_message(tenant)), tenant_id=tenant.tenant_id,
               aggregate_id=tenant.tenant_id, schema=SCHEMA)


async def tenant_resumed(conn: AsyncConnection, tenant: Tenant) -> None:
    await emit(conn, ev.TenantResumed(tenant=tenant_message(tenant)), tenant_id=tenant.tenant_id,
               aggregate_id=tenant.tenant_id, schema=SCHEMA)


async def user_registered(conn: AsyncConnection, user: User) -> None:
    await emit(conn, ev.UserRegistered(user=user_message(user)), tenant_id=user.tenant_id, aggregate_id=user.user_id)


async def user_deleted(conn: AsyncConnection, tenant_id: str, user_id: str) -> None:
    await emit(conn, ev.UserDeleted(user_id=user_id, tenant_id=tenant_id), tenant_id=tenant_id, aggregate_id=user_id)
