"""Tenant use cases for the platform admin (and tenant staff reading their own):
create (then provision), get, list, suspend."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence

from commerce.tenant.v1 import tenant_pb2
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.context import Caller
from services.runtime.errors import AlreadyExists, Unavailable
from services.runtime.idempotency import IdempotencyKey, remember, replay
from services.tenant import events
from services.tenant.convert import tenant_message
from services.tenant.domain import paging
from services.tenant.domain.access import check_can_read_tenant
from services.tenant.domain.tenant import NewTenant, Tenant, TenantState, tenant_not_found
from services.tenant.provisioner import Provisioner
from services.tenant.store.platform import PlatformStore

CREATE = "CreateTenant"
SUSPEND = "SuspendTenant"
RESUME = "ResumeTenant"


class Tenants:
    def __init__(self, store: PlatformStore, provisioner: Provisioner) -> None:
        self._store = store
        self._provisioner = provisioner

    async def create(self, new: NewTenant, key: IdempotencyKey | None) -> Tenant:
        """Records the tenant (PROVISIONING) and tries to provision it at once. A retry
        with the same request_id answers with that same tenant as it stands now."""
        async with self._store.transaction() as conn:
            previous = await replay(conn, key, tenant_pb2.CreateTenantResponse)
            if previous is None:
                tenant = await self._store.insert_tenant(conn, new)
                if tenant is None:
                    raise AlreadyExists(f"tenant {new.tenant_id!r} already exists", reason="TENANT_EXISTS",
                                        metadata={"tenant_id": new.tenant_id})
                await events.tenant_created(conn, tenant)
                await remember(conn, key, tenant_pb2.CreateTenantResponse(tenant=tenant_message(tenant)))
            else:
                found = await self._store.tenant(conn, previous.tenant.tenant_id)
                assert found is not None, "a tenant is never deleted"
                tenant = found
        return await self._provisioner.provision(tenant)

    async def get(self, caller: Caller, tenant_id: str) -> Tenant:
        check_can_read_tenant(caller, tenant_id)
        tenant = await self._store.get_tenant(tenant_id)
        if tenant is None:
            raise tenant_not_found()
        return tenant

    async def list_page(self, size: int, cursor: paging.Cursor | None) -> tuple[Sequence[Tenant], str]:
        """A page of tenants, oldest first, and the token of the next page ("" on the last)."""
        rows = await self._store.list_tenants(cursor, size + 1)
        page = rows[:size]
        next_token = paging.encode(paging.Cursor(page[-1].create_time, page[-1].tenant_id)) if len(rows) > size else ""
        return page, next_token

    async def suspend(self, tenant_id: str, key: IdempotencyKey | None) -> Tenant:
        """Suspends the tenant (a no-op when it already is). TenantSuspended makes every
        service refuse the tokens its users hold."""
        async with self._store.transaction() as conn:
            answered = await self._replayed(conn, key, tenant_pb2.SuspendTenantResponse)
            if answered is not None:
                return answered
            current = await self._store.tenant(conn, tenant_id, for_update=True)
            if current is None:
                raise tenant_not_found()
            tenant = await self._store.save_tenant(conn, current.suspended())
            if tenant.state is not current.state:
                await events.tenant_suspended(conn, tenant)
            await remember(conn, key, tenant_pb2.SuspendTenantResponse(tenant=tenant_message(tenant)))
        return tenant

    async def resume(self, tenant_id: str, key: IdempotencyKey | None) -> Tenant:
        """Lets a suspended tenant's users log in again (a no-op when it is not suspended).

        Every service refuses the tenant's tokens issued up to the suspension (TenantSuspended);
        a token's ``iat`` is in whole seconds, so the tenant becomes loginable only once the
        clock is past the second after the suspension: a token issued from then on is newer than
        the suspension everywhere (a resume within 2 s of the suspension waits that long)."""
        current = await self._store.get_tenant(tenant_id)
        if current is None:
            raise tenant_not_found()
        if current.state is TenantState.SUSPENDED:
            await asyncio.sleep(max(0.0, math.floor(current.update_time.timestamp()) + 2 - time.time()))
        async with self._store.transaction() as conn:
            answered = await self._replayed(conn, key, tenant_pb2.ResumeTenantResponse)
            if answered is not None:
                return answered
            locked = await self._store.tenant(conn, tenant_id, for_update=True)
            assert locked is not None, "a tenant is never deleted"
            if locked.update_time != current.update_time:  # suspended again meanwhile: wait for that one
                raise Unavailable("the tenant changed meanwhile; retry", reason="TENANT_CHANGED")
            tenant = await self._store.save_tenant(conn, locked.resumed())
            if tenant.state is not locked.state:
                await events.tenant_resumed(conn, tenant)
            await remember(conn, key, tenant_pb2.ResumeTenantResponse(tenant=tenant_message(tenant)))
        return tenant

    async def _replayed(self, conn: AsyncConnection, key: IdempotencyKey | None,
                        response: type[tenant_pb2.SuspendTenantResponse | tenant_pb2.ResumeTenantResponse],
                        ) -> Tenant | None:
        """The tenant as it stands now when ``key`` was answered before, else None."""
        previous = await replay(conn, key, response)
        if previous is None:
            return None
        found = await self._store.tenant(conn, previous.tenant.tenant_id)
        assert found is not None, "a tenant is never deleted"
        return found
