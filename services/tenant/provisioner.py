"""Provisioning a tenant: its schema in every service database.

The tenant service migrates its own ``t_<id>`` schema directly and calls
commerce.tenant.v1.ProvisioningService/ProvisionTenant (idempotent) on every
service in ``settings.provision_services`` with a service token. Only when all
succeeded is the tenant marked provisioned (PROVISIONING -> ACTIVE). What could
not finish is retried by a background loop every ``retry_seconds``, which also
picks up tenants left unprovisioned by a previous run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import structlog
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc

from services.runtime.channels import internal_channel
from services.runtime.db import Database
from services.runtime.migrations import upgrade_tenant
from services.runtime.tasks import cancel_and_wait
from services.tenant.domain.tenant import Tenant
from services.tenant.store.platform import PlatformStore

log = structlog.get_logger("commerce.tenant.provisioning")
CALL_TIMEOUT_SECONDS = 30.0


class Provisioner:
    def __init__(self, db: Database, store: PlatformStore, script_location: Path,
                 targets: Sequence[tuple[str, str]], service_token: Callable[[], str],
                 retry_seconds: float) -> None:
        self._db = db
        self._store = store
        self._script_location = script_location
        self._targets = list(targets)  # (service name, address)
        self._service_token = service_token
        self._retry_seconds = retry_seconds
        self._in_flight: dict[str, asyncio.Task[Tenant]] = {}
        self._task: asyncio.Task[None] | None = None

    async def provision(self, tenant: Tenant) -> Tenant:
        """Try once; the tenant as it stands afterwards (still unprovisioned if a step failed).
        Joins an attempt already under way for the same tenant; the attempt runs to its
        end even if the caller goes away (its RPC cancelled)."""
        if tenant.provisioned:
            return tenant
        attempt = self._in_flight.get(tenant.tenant_id)
        if attempt is None:
            attempt = asyncio.create_task(self._attempt(tenant), name=f"provision-{tenant.tenant_id}")
            self._in_flight[tenant.tenant_id] = attempt
            attempt.add_done_callback(lambda _: self._in_flight.pop(tenant.tenant_id, None))
        return await asyncio.shield(attempt)

    async def _attempt(self, tenant: Tenant) -> Tenant:
        try:
            await upgrade_tenant(self._db, tenant.tenant_id, self._script_location)
            results = await asyncio.gather(*(self._call(name, address, tenant) for name, address in self._targets),
                                           return_exceptions=True)
            failed = {name: _describe(r) for (name, _), r in zip(self._targets, results, strict=True)
                      if isinstance(r, BaseException)}
            if failed:
                log.warning("provisioning incomplete; will retry", tenant_id=tenant.tenant_id, failed=failed,
                            retry_seconds=self._retry_seconds)
                return tenant
            return await self._mark_provisioned(tenant.tenant_id)
        except Exception as exc:  # the database itself: the retry loop tries again
            log.warning("provisioning failed; will retry", tenant_id=tenant.tenant_id, error=_describe(exc),
                        retry_seconds=self._retry_seconds)
            return tenant

    async def _call(self, name: str, address: str, tenant: Tenant) -> None:
        # A fresh channel per attempt: a cached one would sit in reconnect back-off
        # long after the service came back.
        async with internal_channel(address) as channel:
            stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
            response = await stub.ProvisionTenant(
                provisioning_pb2.ProvisionTenantRequest(tenant_id=tenant.tenant_id,
                                                        currency_code=tenant.currency_code),
                metadata=(("authorization", f"Bearer {self._service_token()}"),),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        log.info("tenant provisioned in service", tenant_id=tenant.tenant_id, service=name,
                 schema=response.schema, revision=response.revision)

    async def _mark_provisioned(self, tenant_id: str) -> Tenant:
        async with self._store.transaction() as conn:
            current = await self._store.tenant(conn, tenant_id, for_update=True)
            assert current is not None, "a tenant is never deleted"
            if current.provisioned:
                return current
            saved = await self._store.save_tenant(conn, current.provisioning_done())
        log.info("tenant provisioned", tenant_id=tenant_id, state=saved.state.value)
        return saved

    async def provision_pending(self) -> int:
        """One pass over every unprovisioned tenant; how many are still unprovisioned."""
        left = 0
        for tenant_id in await self._store.unprovisioned():
            tenant = await self._store.get_tenant(tenant_id)
            if tenant is None:
                continue
            tenant = await self.provision(tenant)
            left += not tenant.provisioned
        return left

    async def _loop(self) -> None:
        while True:
            try:
                await self.provision_pending()
            except Exception:
                log.exception("provisioning pass failed; will retry")
            await asyncio.sleep(self._retry_seconds)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="tenant-provisioning")

    async def stop(self) -> None:
        await cancel_and_wait(self._task, *self._in_flight.values())


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}"
