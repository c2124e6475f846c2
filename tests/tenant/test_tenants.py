"""Creating, reading, listing tenants (platform admin), with provisioning of the
tenant's schema in the tenant database and in a catalog-like service database."""

from __future__ import annotations

import grpc
from commerce.tenant.v1 import tenant_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.tenant.conftest import Mesh
from tests.tenant.harness import bearer, count_rows, failure_of, schemas_in, tables_in

PREFIX = "tt1"


def _create(tenant_id: str, request_id: str = "", name: str = "Acme", currency: str = "USD",
            ) -> tenant_pb2.CreateTenantRequest:
    return tenant_pb2.CreateTenantRequest(
        tenant=tenant_pb2.Tenant(tenant_id=tenant_id, display_name=name, currency_code=currency),
        request_id=request_id)


async def test_created_tenant_is_active_with_its_schema_in_every_service_database(mesh: Mesh) -> None:
    response = await mesh.client.stub.CreateTenant(_create("acme-shop"), metadata=bearer(mesh.admin))
    tenant = response.tenant
    assert tenant.name == "tenants/acme-shop"
    assert tenant.state == tenant_pb2.TENANT_STATE_ACTIVE
    assert (tenant.display_name, tenant.currency_code) == ("Acme", "USD")
    assert tenant.create_time.seconds > 0
    assert {"users", "idempotency_keys"} <= await tables_in(mesh.settings, "tenant", "t_acme_shop")
    assert "things" in await tables_in(mesh.settings, "catalog", "t_acme_shop")
    assert "platform" not in await schemas_in(mesh.settings, "catalog")


async def test_retry_with_the_same_request_id_returns_the_same_tenant(mesh: Mesh) -> None:
    first = await mesh.client.stub.CreateTenant(_create("retried", "req-1"), metadata=bearer(mesh.admin))
    again = await mesh.client.stub.CreateTenant(_create("retried", "req-1"), metadata=bearer(mesh.admin))
    assert again.tenant == first.tenant
    assert await count_rows(mesh.settings, "SELECT count(*) FROM platform.tenants WHERE tenant_id = 'retried'") == 1


async def test_an_existing_tenant_id_is_already_exists(mesh: Mesh) -> None:
    await mesh.client.stub.CreateTenant(_create("taken", "req-2"), metadata=bearer(mesh.admin))
    failure = await failure_of(mesh.client.stub.CreateTenant(_create("taken", "req-3", name="Other"),
                                                             metadata=bearer(mesh.admin)))
    assert failure.code == grpc.StatusCode.ALREADY_EXISTS
    failure = await failure_of(mesh.client.stub.CreateTenant(_create("taken"), metadata=bearer(mesh.admin)))
    assert failure.code == grpc.StatusCode.ALREADY_EXISTS


async def test_a_request_id_reused_for_another_tenant_is_refused(mesh: Mesh) -> None:
    await mesh.client.stub.CreateTenant(_create("first-one", "req-4"), metadata=bearer(mesh.admin))
    failure = await failure_of(mesh.client.stub.CreateTenant(_create("second-one", "req-4"),
                                                             metadata=bearer(mesh.admin)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "REQUEST_ID_REUSED")
    assert await count_rows(mesh.settings, "SELECT count(*) FROM platform.tenants WHERE tenant_id = 'second-one'") == 0


async def test_listing_pages_through_every_tenant_once_oldest_first(mesh: Mesh) -> None:
    for i in range(5):
        await mesh.create_tenant(f"list-{i}")
    seen: list[tenant_pb2.Tenant] = []
    token = ""
    while True:
        page = await mesh.client.stub.ListTenants(tenant_pb2.ListTenantsRequest(page_size=2, page_token=token),
                                                  metadata=bearer(mesh.admin))
        assert len(page.tenants) <= 2
        seen.extend(page.tenants)
        token = page.next_page_token
        if not token:
            break
    ids = [t.tenant_id for t in seen]
    assert len(ids) == len(set(ids))
    assert [f"list-{i}" for i in range(5)] == [i for i in ids if i.startswith("list-")]
    times = [(t.create_time.seconds, t.create_time.nanos) for t in seen]
    assert times == sorted(times)
    everything = await mesh.client.stub.ListTenants(tenant_pb2.ListTenantsRequest(page_size=100),
                                                    metadata=bearer(mesh.admin))
    assert [t.tenant_id for t in everything.tenants] == ids


async def test_a_bad_page_token_or_size_names_the_field(mesh: Mesh) -> None:
    for request, field in [
        (tenant_pb2.ListTenantsRequest(page_token="not-a-token"), "page_token"),
        (tenant_pb2.ListTenantsRequest(page_token="W1siYSJd"), "page_token"),
        (tenant_pb2.ListTenantsRequest(page_token="x" * 5000), "page_token"),
        (tenant_pb2.ListTenantsRequest(page_size=-1), "page_size"),
    ]:
        failure = await failure_of(mesh.client.stub.ListTenants(request, metadata=bearer(mesh.admin)))
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_a_page_size_above_the_maximum_is_clamped_like_every_list(mesh: Mesh) -> None:
    reply = await mesh.client.stub.ListTenants(tenant_pb2.ListTenantsRequest(page_size=10_000),
                                               metadata=bearer(mesh.admin))
    assert 0 < len(reply.tenants) <= 100


async def test_owner_reads_their_own_tenant_and_no_other(mesh: Mesh) -> None:
    tenant_a, owner_a = await mesh.tenant_with_owner()
    tenant_b, _ = await mesh.tenant_with_owner()
    own = await mesh.client.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=tenant_a), metadata=bearer(owner_a))
    assert own.tenant.tenant_id == tenant_a
    failure = await failure_of(mesh.client.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=tenant_b),
                                                          metadata=bearer(owner_a)))
    assert failure.code == grpc.StatusCode.NOT_FOUND
    failure = await failure_of(mesh.client.stub.ListTenants(tenant_pb2.ListTenantsRequest(),
                                                            metadata=bearer(owner_a)))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED


async def test_admin_reads_any_tenant_and_an_unknown_one_is_not_found(mesh: Mesh) -> None:
    tenant_id, _ = await mesh.tenant_with_owner()
    got = await mesh.client.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=tenant_id),
                                           metadata=bearer(mesh.admin))
    assert got.tenant.state == tenant_pb2.TENANT_STATE_ACTIVE
    for unknown in ("no-such-shop", "platform"):
        failure = await failure_of(mesh.client.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=unknown),
                                                              metadata=bearer(mesh.admin)))
        assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_tenant_calls_need_a_token_and_the_admin_role(mesh: Mesh) -> None:
    failure = await failure_of(mesh.client.stub.CreateTenant(_create("no-token")))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    _, owner = await mesh.tenant_with_owner()
    failure = await failure_of(mesh.client.stub.CreateTenant(_create("by-owner"), metadata=bearer(owner)))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    failure = await failure_of(mesh.client.stub.CreateTenant(_create("forged"), metadata=bearer(mesh.admin + "x")))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED
    assert await count_rows(mesh.settings, "SELECT count(*) FROM platform.tenants WHERE tenant_id IN "
                            "('no-token', 'by-owner', 'forged')") == 0


async def test_health_is_serving_while_the_database_answers(mesh: Mesh) -> None:
    stub = health_pb2_grpc.HealthStub(mesh.client.channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service="commerce.tenant.v1.TenantService"))
    assert response.status == health_pb2.HealthCheckResponse.SERVING
