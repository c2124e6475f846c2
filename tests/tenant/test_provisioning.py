"""A tenant created while a service is unreachable stays PROVISIONING and becomes
ACTIVE once the service is back: by the retry loop, or at the next start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from commerce.tenant.v1 import tenant_pb2

from services.devmesh.postgres import Postgres
from services.runtime.settings import Settings
from tests.tenant.harness import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Client,
    add_admin,
    bearer,
    eventually,
    failure_of,
    make_settings,
    start_target,
    start_tenant,
    tables_in,
)

PREFIX = "tt2"


@dataclass
class Setup:
    settings: Settings
    tmp: Path


@pytest.fixture(scope="module")
async def setup(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Setup]:
    tmp = tmp_path_factory.mktemp(PREFIX)
    settings = make_settings(postgres.url, PREFIX, tmp)
    await add_admin(settings)
    yield Setup(settings, tmp)


def _create(tenant_id: str) -> tenant_pb2.CreateTenantRequest:
    return tenant_pb2.CreateTenantRequest(
        tenant=tenant_pb2.Tenant(tenant_id=tenant_id, display_name="Late", currency_code="GBP"))


async def _state(client: Client, admin: str, tenant_id: str) -> int:
    response = await client.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=tenant_id), metadata=bearer(admin))
    return int(response.tenant.state)


async def test_tenant_becomes_active_once_the_unreachable_service_is_back(setup: Setup) -> None:
    tenant = await start_tenant(setup.settings)
    client = Client(tenant.port)
    try:
        admin = await client.login("platform", ADMIN_EMAIL, ADMIN_PASSWORD)
        created = await client.stub.CreateTenant(_create("late-shop"), metadata=bearer(admin))
        assert created.tenant.state == tenant_pb2.TENANT_STATE_PROVISIONING
        # Not ready for shoppers or staff yet.
        failure = await failure_of(client.stub.CreateGuestToken(tenant_pb2.CreateGuestTokenRequest(
            tenant_id="late-shop")))
        assert failure.code == grpc.StatusCode.NOT_FOUND
        failure = await failure_of(client.stub.CreateUser(tenant_pb2.CreateUserRequest(
            tenant_id="late-shop", email="o@late.example", password="long-enough-pw",
            role=tenant_pb2.USER_ROLE_OWNER), metadata=bearer(admin)))
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "TENANT_PROVISIONING")

        target = await start_target(setup.settings, tenant.port, setup.tmp)
        try:
            async def active() -> bool:
                return await _state(client, admin, "late-shop") == tenant_pb2.TENANT_STATE_ACTIVE

            await eventually(active)
            assert "things" in await tables_in(setup.settings, "catalog", "t_late_shop")
            guest = await client.stub.CreateGuestToken(tenant_pb2.CreateGuestTokenRequest(tenant_id="late-shop"))
            assert guest.access_token
        finally:
            await target.stop()
    finally:
        await client.close()
        await tenant.stop(0)


async def test_tenant_left_provisioning_by_a_stopped_server_is_finished_at_start_up(setup: Setup) -> None:
    no_retries = setup.settings.model_copy(update={"provision_retry_seconds": 3600.0})
    first = await start_tenant(no_retries)
    client = Client(first.port)
    try:
        admin = await client.login("platform", ADMIN_EMAIL, ADMIN_PASSWORD)
        created = await client.stub.CreateTenant(_create("orphan-shop"), metadata=bearer(admin))
        assert created.tenant.state == tenant_pb2.TENANT_STATE_PROVISIONING
    finally:
        await client.close()
        await first.stop(0)

    target = await start_target(setup.settings, None, setup.tmp)
    second = await start_tenant(no_retries)
    client = Client(second.port)
    try:
        async def active() -> bool:
            admin = await client.login("platform", ADMIN_EMAIL, ADMIN_PASSWORD)
            return await _state(client, admin, "orphan-shop") == tenant_pb2.TENANT_STATE_ACTIVE

        await eventually(active)
        assert "things" in await tables_in(setup.settings, "catalog", "t_orphan_shop")
    finally:
        await client.close()
        await second.stop(0)
        await target.stop()
