"""A tenant service with a catalog-like provisioning target and a platform admin,
one per test module (each module names its own database prefix in PREFIX)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from commerce.tenant.v1 import tenant_pb2

from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.server import Running
from services.runtime.settings import Settings
from tests.tenant.harness import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Client,
    Target,
    add_admin,
    bearer,
    make_settings,
    start_target,
    start_tenant,
)

OWNER_PASSWORD = "owner-password-1"


@dataclass
class Mesh:
    settings: Settings
    tenant: Running
    target: Target
    client: Client
    admin: str
    tmp: Path

    async def create_tenant(self, tenant_id: str | None = None, currency: str = "EUR") -> tenant_pb2.Tenant:
        tenant_id = tenant_id or f"t-{uuid.uuid4().hex[:8]}"
        response = await self.client.stub.CreateTenant(
            tenant_pb2.CreateTenantRequest(tenant=tenant_pb2.Tenant(
                tenant_id=tenant_id, display_name=f"Shop {tenant_id}", currency_code=currency)),
            metadata=bearer(self.admin))
        tenant: tenant_pb2.Tenant = response.tenant
        return tenant

    async def add_user(self, tenant_id: str, email: str, role: tenant_pb2.UserRole = tenant_pb2.USER_ROLE_OWNER,
                       password: str = OWNER_PASSWORD, token: str | None = None) -> tenant_pb2.User:
        response = await self.client.stub.CreateUser(
            tenant_pb2.CreateUserRequest(tenant_id=tenant_id, email=email, password=password, role=role),
            metadata=bearer(token or self.admin))
        user: tenant_pb2.User = response.user
        return user

    async def tenant_with_owner(self) -> tuple[str, str]:
        """A new ACTIVE tenant and its owner's token."""
        tenant = await self.create_tenant()
        assert tenant.state == tenant_pb2.TENANT_STATE_ACTIVE
        await self.add_user(tenant.tenant_id, "owner@shop.example")
        return tenant.tenant_id, await self.client.login(tenant.tenant_id, "owner@shop.example", OWNER_PASSWORD)


@pytest.fixture(scope="module")
async def mesh(postgres: Postgres, nats_server: Nats, tmp_path_factory: pytest.TempPathFactory,
               request: pytest.FixtureRequest) -> AsyncIterator[Mesh]:
    prefix = str(request.module.PREFIX)
    tmp = tmp_path_factory.mktemp(prefix)
    settings = make_settings(postgres.url, prefix, tmp, nats_url=nats_server.url)
    await add_admin(settings)
    tenant = await start_tenant(settings)
    target = await start_target(settings, tenant.port, tmp)
    client = Client(tenant.port)
    admin = await client.login("platform", ADMIN_EMAIL, ADMIN_PASSWORD)
    yield Mesh(settings, tenant, target, client, admin, tmp)
    await client.close()
    await target.stop()
    await tenant.stop(0)
