"""Service tokens: the tenant service's internal IssueServiceToken, and ServiceTokens
calling another service's ROLE_SERVICE method with them (real tenant server and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc, service_token_pb2, service_token_pb2_grpc
from pydantic import SecretStr

from services.devmesh.postgres import Postgres
from services.runtime.jwks_client import remote_jwks
from services.runtime.server import Running
from services.runtime.service_auth import ServiceTokens
from services.runtime.settings import Settings
from services.runtime.tokens import KeySet, TokenVerifier
from services.tenant.service_tokens import secret_matches
from tests.tenant.harness import Target, failure_of, make_settings, start_target, start_tenant

SECRET = "mesh-shared-secret"


@dataclass
class Mesh:
    settings: Settings
    tenant: Running
    target: Target


@pytest.fixture(scope="module")
async def mesh(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Mesh]:
    tmp: Path = tmp_path_factory.mktemp("svctok")
    settings = make_settings(postgres.url, "svctok", tmp, service_secret=SECRET)
    tenant = await start_tenant(settings)
    settings = settings.model_copy(update={"tenant_port": tenant.port})
    target = await start_target(settings, tenant.port, tmp)
    yield Mesh(settings, tenant, target)
    await target.stop()
    await tenant.stop(0)


async def issue(mesh: Mesh, service: str, secret: str) -> service_token_pb2.IssueServiceTokenResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mesh.tenant.port}") as channel:
        stub = service_token_pb2_grpc.ServiceTokenServiceStub(channel)
        response: service_token_pb2.IssueServiceTokenResponse = await stub.IssueServiceToken(
            service_token_pb2.IssueServiceTokenRequest(service=service, secret=secret))
        return response


async def test_a_service_token_lets_a_service_call_another_services_internal_method(mesh: Mesh) -> None:
    tokens = ServiceTokens(mesh.settings, "order")
    try:
        metadata = await tokens.metadata("acme-shop")
        async with grpc.aio.insecure_channel(mesh.settings.address_of("catalog")) as channel:
            stub = provisioning_pb2_grpc.ProvisioningServiceStub(channel)
            response = await stub.ProvisionTenant(provisioning_pb2.ProvisionTenantRequest(
                tenant_id="acme-shop", currency_code="EUR"), metadata=metadata)
    finally:
        await tokens.close()
    assert response.schema == "t_acme_shop"
    assert dict(metadata)["x-tenant-id"] == "acme-shop"


async def test_a_service_token_names_the_service_and_is_short_lived(mesh: Mesh) -> None:
    response = await issue(mesh, "cart", SECRET)
    verifier = TokenVerifier(KeySet(remote_jwks(f"127.0.0.1:{mesh.tenant.port}")),
                             mesh.settings.jwt_issuer, mesh.settings.jwt_audience)
    caller = await verifier.verify(response.access_token)
    assert (caller.subject, caller.tenant_id, caller.roles) == ("service:cart", "platform", frozenset({"service"}))
    assert 0 < response.expires_in <= 300


@pytest.mark.parametrize("secret", ["wrong-secret", "", SECRET + "x"])
async def test_a_wrong_or_missing_secret_is_refused(mesh: Mesh, secret: str) -> None:
    failure = await failure_of(issue(mesh, "order", secret))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_SERVICE_SECRET")


async def test_a_bad_service_name_is_invalid_argument_naming_the_field(mesh: Mesh) -> None:
    failure = await failure_of(issue(mesh, "Order Service!", SECRET))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["service"])


def test_no_secret_configured_means_no_secret_matches() -> None:
    assert not secret_matches(SecretStr(""), "")
    assert not secret_matches(SecretStr(""), "anything")
    assert secret_matches(SecretStr("s"), "s")


async def test_a_service_token_is_reused_until_shortly_before_it_expires() -> None:
    issued: list[int] = []

    async def mint() -> tuple[str, int]:
        issued.append(1)
        return f"token-{len(issued)}", 300

    tokens = ServiceTokens(Settings(), "order", issue=mint)
    first = await tokens.metadata("acme")
    second = await tokens.metadata("other")
    assert first[0] == second[0] == ("authorization", "Bearer token-1") and len(issued) == 1
    tokens.forget()
    assert (await tokens.metadata("acme"))[0] == ("authorization", "Bearer token-2")
