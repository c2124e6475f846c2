"""Security tests run against the session's real mesh: the very `mesh`, `rest`
and `admin` fixtures of tests/e2e/conftest.py (one mesh per session, whichever
folder asks first), plus two tenants of their own with a token for every role.

The e2e fixtures are only visible under tests/e2e, and importing them here would
make a second fixture definition (a second mesh, refused by the mesh lock on
the same data folder). So these fixtures run the e2e definitions themselves:
one cached value per session, shared with tests/e2e."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from commerce.tenant.v1 import service_token_pb2, service_token_pb2_grpc

from services.devmesh.mesh import Mesh
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from tests.e2e import conftest as e2e

E2E_BASEID = "tests/e2e"
TENANT_A, TENANT_B = "sec-a", "sec-b"
ROLES = ("admin", "owner", "seller", "customer", "guest", "service")
Metadata = tuple[tuple[str, str], ...]


def _e2e_definition(request: pytest.FixtureRequest, name: str) -> Any:
    """tests/e2e's definition of the session fixture ``name``, when that folder was collected."""
    manager: Any = request._fixturemanager  # private: pytest has no public API for this
    found: list[Any] = list(getattr(manager, "_arg2fixturedefs", {}).get(name, ()))
    for table in (getattr(manager, "_arg2node2fixturedefs", {}), getattr(manager, "_arg2nodeid2fixturedefs", {})):
        for definitions in table.get(name, {}).values():
            found += definitions
    function = _e2e_function(name)
    return next((d for d in found if d.baseid == E2E_BASEID or getattr(d, "func", None) is function), None)


def _e2e_function(name: str) -> Any:
    fixture = getattr(e2e, name)
    unwrap = getattr(fixture, "_get_wrapped_function", None)
    return unwrap() if unwrap is not None else fixture.__wrapped__


@pytest.fixture(scope="session")
def mesh(request: pytest.FixtureRequest, workdir: Path, postgres: Postgres, nats_server: Nats) -> Iterator[Mesh]:
    definition = _e2e_definition(request, "mesh")
    if definition is not None:  # tests/e2e is in this session: share its mesh (pytest caches it)
        yield definition.execute(request)
        return
    yield from _e2e_function("mesh")(workdir, postgres, nats_server)


@pytest.fixture(scope="session")
def rest(request: pytest.FixtureRequest, mesh: Mesh) -> Iterator[httpx.Client]:
    definition = _e2e_definition(request, "rest")
    if definition is not None:
        yield definition.execute(request)
        return
    yield from _e2e_function("rest")(mesh)


@pytest.fixture(scope="session")
def admin(request: pytest.FixtureRequest, mesh: Mesh, rest: httpx.Client) -> e2e.Account:
    definition = _e2e_definition(request, "admin")
    value: e2e.Account = definition.execute(request) if definition is not None else _e2e_function("admin")(mesh, rest)
    return value


@dataclass(frozen=True)
class Tenant:
    """A tenant with a bearer token for every role (admin and service state the tenant)."""

    tenant_id: str
    tokens: dict[str, str]
    shop: e2e.Shop

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
    reply = rest.post("/v1/auth/guest", json={"tenantId": tenant_id})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["accessToken"])


def _tenant(mesh: Mesh, rest: httpx.Client, admin: e2e.Account, tenant_id: str) -> Tenant:
    shop = e2e.open_shop(rest, admin, tenant_id)
    owner_email, owner_pw = f"owner@{tenant_id}.test", secrets.token_urlsafe(12)
    reply = rest.post(f"/v1/tenants/{tenant_id}/users", headers=admin.auth,
                      json={"email": owner_email, "password": owner_pw, "role": "USER_ROLE_OWNER"})
    assert reply.status_code == 200, reply.text
    tokens = {
        "admin": admin.token, "owner": e2e.login(rest, tenant_id, owner_email, owner_pw),
        "seller": shop.seller.token, "customer": shop.customer.token,
        "guest": guest_token(rest, tenant_id), "service": service_token(mesh),
    }
    return Tenant(tenant_id, tokens, shop)


@pytest.fixture(scope="session")
def tenant_a(mesh: Mesh, rest: httpx.Client, admin: e2e.Account) -> Tenant:
    return _tenant(mesh, rest, admin, TENANT_A)


@pytest.fixture(scope="session")
def tenant_b(mesh: Mesh, rest: httpx.Client, admin: e2e.Account) -> Tenant:
    return _tenant(mesh, rest, admin, TENANT_B)


@pytest.fixture(scope="session")
async def channels(mesh: Mesh) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """A channel to each service's own port (bypassing Envoy), by service name."""
    opened = {name: grpc.aio.insecure_channel(mesh.address_of(name)) for name in mesh.services}
    yield opened
    for channel in opened.values():
        await channel.close()
