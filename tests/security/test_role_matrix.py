"""Every RPC of the protos x every role, against the real services on their own
ports: the outcome follows the method's `(commerce.access.v1.access)` declaration.

Denied: PERMISSION_DENIED for a token whose role is not listed, UNAUTHENTICATED
without a token. Allowed: anything but those two (a minimal request may well
be INVALID_ARGUMENT or NOT_FOUND). A method without a declaration fails here."""

from __future__ import annotations

import grpc
import pytest
from commerce.tenant.v1 import service_token_pb2

from services.devmesh.mesh import Mesh
from tests.security.calls import call, served_services
from tests.security.conftest import ROLES, Tenant
from tests.security.descriptors import RPCS, Rpc

REFUSALS = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)


def minimal_request(rpc: Rpc, mesh: Mesh) -> bytes:
    """An empty request, except where the method's own check (not the access rule) would
    refuse it with UNAUTHENTICATED: IssueServiceToken gets the mesh's real service secret."""
    if rpc.path == "/commerce.tenant.v1.ServiceTokenService/IssueServiceToken":
        return service_token_pb2.IssueServiceTokenRequest(
            service="security-tests", secret=mesh.settings.service_secret.get_secret_value()).SerializeToString()
    return b""


def test_the_descriptors_hold_the_services_of_the_mesh() -> None:
    services = {rpc.service for rpc in RPCS}
    assert {"commerce.tenant.v1.TenantService", "commerce.catalog.v1.CatalogService",
            "commerce.catalog.v1.InventoryService", "commerce.cart.v1.CartService",
            "commerce.order.v1.OrderService", "commerce.payment.v1.PaymentService",
            "commerce.payment.v1.PaymentProcessingService", "commerce.tenant.v1.ProvisioningService",
            "commerce.tenant.v1.ServiceTokenService"} <= services
    assert any(rpc.streaming for rpc in RPCS), "WatchOrder (a server stream) is in the matrix"


@pytest.mark.parametrize("rpc", RPCS, ids=[r.id for r in RPCS])
def test_every_rpc_declares_who_may_call_it(rpc: Rpc) -> None:
    assert rpc.rule is not None, f"{rpc.path} has no (commerce.access.v1.access) option: it is refused to all"
    assert rpc.rule.roles or rpc.rule.anonymous, f"{rpc.path} declares an access rule that admits no one"


@pytest.mark.parametrize("role", [*ROLES, None], ids=[*ROLES, "none"])
@pytest.mark.parametrize("rpc", RPCS, ids=[r.id for r in RPCS])
async def test_the_declared_rule_decides_the_call(rpc: Rpc, role: str | None, mesh: Mesh, tenant_a: Tenant,
                                                 channels: dict[str, grpc.aio.Channel],
                                                 served: dict[str, list[str]]) -> None:
    assert rpc.rule is not None, f"{rpc.path} declares no access rule"
    owners = served.get(rpc.service)
    assert owners, f"{rpc.service} is served by no service of the mesh"
    for owner in owners:
        outcome = await call(channels[owner], rpc, minimal_request(rpc, mesh), tenant_a.metadata(role))
        where = f"{rpc.path} on {owner} as {role or 'no token'}: {outcome}"
        if rpc.rule.allows(role):
            assert outcome.code not in REFUSALS, where
            assert outcome.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), where
        elif role is None:
            assert (outcome.code, outcome.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED"), where
        else:
            assert (outcome.code, outcome.reason) == (grpc.StatusCode.PERMISSION_DENIED, "ROLE_NOT_ALLOWED"), where


@pytest.fixture(scope="module")
async def served(channels: dict[str, grpc.aio.Channel]) -> dict[str, list[str]]:
    return await served_services(channels)
