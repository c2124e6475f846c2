"""Security tests run against the session's real mesh (the ``mesh``, ``rest`` and
``admin`` fixtures of tests/e2e/harness.py, shared with tests/e2e), with two tenants
of their own and a token for every role."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import jwt
import pytest
from commerce.tenant.v1 import service_token_pb2, service_token_pb2_grpc

from services.devmesh.mesh import Mesh
from tests.e2e.harness import Account, Shop, login, ok, open_shop
from tests.security.minter import Minter

TENANT_A, TENANT_B = "sec-a", "sec-b"
ROLES = ("admin", "owner", "seller", "customer", "guest", "service")
Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Tenant:
    """A tenant with a bearer token for every role (admin and service state the tenant)."""

    tenant_id: str
    tokens: dict[str, str]
    shop: Shop

    def metadata(self, role: str | None) -> Metadata:
        if role is None:
            return ()
        md: Metadata = (("authorization", f"Bearer {self.tokens[role]}"),)
        if role in ("admin", "service"):
            md += (("x-tenant-id", self.tenant_id),)
        return md

    def auth(self, role: str) -> dict[str, str]:
        return dict(self.metadata(role))


def service_token(mesh: Mesh) -> str:
    """A real service token, issued by the tenant service for the mesh's shared secret."""
    with grpc.insecure_channel(mesh.address_of("tenant")) as channel:
        reply = service_token_pb2_grpc.ServiceTokenServiceStub(channel).IssueServiceToken(
            service_token_pb2.IssueServiceTokenRequest(
                service="security-tests", secret=mesh.settings.service_secret.get_secret_value()), timeout=10)
    return str(reply.access_token)


def guest_token(rest: httpx.Client, tenant_id: str) -> str:
    return str(ok(rest.post("/v1/auth/guest", json={"tenantId": tenant_id}))["accessToken"])


def _tenant(mesh: Mesh, rest: httpx.Client, admin: Account, tenant_id: str) -> Tenant:
    shop = open_shop(rest, admin, tenant_id)
    owner_email, owner_pw = f"owner@{tenant_id}.test", secrets.token_urlsafe(12)
    ok(rest.post(f"/v1/tenants/{tenant_id}/users", headers=admin.auth,
                 json={"email": owner_email, "password": owner_pw, "role": "USER_ROLE_OWNER"}))
    tokens = {
        "admin": admin.token, "owner": login(rest, tenant_id, owner_email, owner_pw),
        "seller": shop.seller.token, "customer": shop.customer.token,
        "guest": guest_token(rest, tenant_id), "service": service_token(mesh),
    }
    return Tenant(tenant_id, tokens, shop)


@pytest.fixture(scope="session")
def tenant_a(mesh: Mesh, rest: httpx.Client, admin: Account) -> Tenant:
    return _tenant(mesh, rest, admin, TENANT_A)


@pytest.fixture(scope="session")
def tenant_b(mesh: Mesh, rest: httpx.Client, admin: Account) -> Tenant:
    return _tenant(mesh, rest, admin, TENANT_B)


@pytest.fixture(scope="session")
async def channels(mesh: Mesh) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """A channel to each service's own port (bypassing Envoy), by service name."""
    opened = {name: grpc.aio.insecure_channel(mesh.address_of(name)) for name in mesh.services}
    yield opened
    for channel in opened.values():
        await channel.close()


@pytest.fixture(scope="session")
def minter(mesh: Mesh, tenant_a: Tenant) -> Minter:
    seller = jwt.decode(tenant_a.tokens["seller"], options={"verify_signature": False})
    return Minter(mesh, tenant_a.tenant_id, str(seller["sub"]))
