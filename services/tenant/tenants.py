"""Tenant use cases for the platform admin (and tenant staff reading their own):
create (then provision), get, list, suspend."""

from __future__ import annotations

from collections.abc import Sequence

from commerce.tenant.v1 import tenant_pb2

from services.runtime.context import Caller
from services.runtime.errors import AlreadyExists
from services.runtime.idempotency import IdempotencyKey, remember, replay
from services.tenant import events
from services.tenant.convert import tenant_message
from services.tenant.domain import paging
from services.tenant.domain.access import check_can_read_tenant
from services.tenant.domain.tenant import NewTenant, Tenant, tenant_not_found
from services.tenant.provisioner import Provisioner
from services.tenant.store.platform import PlatformStore

CREATE = "CreateTenant"
SUSPEND = "SuspendTenant"


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
            previous = await replay(conn, key, tenant_pb2.SuspendTenantResponse)
            if previous is not None:
                found = await self._store.tenant(conn, previous.tenant.tenant_id)
                assert found is not None, "a tenant is never deleted"
                return found
            current = await self._store.tenant(conn, tenant_id, for_update=True)
            if current is None:
                raise tenant_not_found()
            tenant = await self._store.save_tenant(conn, current.suspended())
            if tenant.state is not current.state:
                await events.tenant_suspended(conn, tenant)
            await remember(conn, key, tenant_pb2.SuspendTenantResponse(tenant=tenant_message(tenant)))
        return tenant
