"""Bad input gets INVALID_ARGUMENT with a BadRequest violation naming the field,
and nothing is written."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from commerce.tenant.v1 import tenant_pb2

from tests.tenant.conftest import Mesh
from tests.tenant.harness import bearer, count_rows, failure_of

PREFIX = "tt4"
HUGE = "x" * 1_000_000
GOOD_PASSWORD = "good-password-1"


def _tenant(tenant_id: str = "fine-shop", name: str = "Fine", currency: str = "EUR",
            request_id: str = "") -> tenant_pb2.CreateTenantRequest:
    return tenant_pb2.CreateTenantRequest(
        tenant=tenant_pb2.Tenant(tenant_id=tenant_id, display_name=name, currency_code=currency),
        request_id=request_id)


@pytest.mark.parametrize(("request_", "field"), [
    (_tenant(tenant_id=""), "tenant.tenant_id"),
    (_tenant(tenant_id="ab"), "tenant.tenant_id"),
    (_tenant(tenant_id="a" * 33), "tenant.tenant_id"),
    (_tenant(tenant_id="Acme"), "tenant.tenant_id"),
    (_tenant(tenant_id="1acme"), "tenant.tenant_id"),
    (_tenant(tenant_id="acme_shop"), "tenant.tenant_id"),
    (_tenant(tenant_id="acme'; drop table tenants; --"), "tenant.tenant_id"),
    (_tenant(tenant_id="acme\x00"), "tenant.tenant_id"),
    (_tenant(tenant_id="platform"), "tenant.tenant_id"),
    (_tenant(tenant_id=HUGE), "tenant.tenant_id"),
    (_tenant(name=""), "tenant.display_name"),
    (_tenant(name="   "), "tenant.display_name"),
    (_tenant(name="x" * 201), "tenant.display_name"),
    (_tenant(name=HUGE), "tenant.display_name"),
    (_tenant(name="bell\x07shop"), "tenant.display_name"),
    (_tenant(name="next\u0085line"), "tenant.display_name"),
    (_tenant(currency=""), "tenant.currency_code"),
    (_tenant(currency="eur"), "tenant.currency_code"),
    (_tenant(currency="EU"), "tenant.currency_code"),
    (_tenant(currency="EURO"), "tenant.currency_code"),
    (_tenant(currency="ABC"), "tenant.currency_code"),
    (_tenant(currency="XXX"), "tenant.currency_code"),
    (_tenant(request_id="has spaces"), "request_id"),
    (_tenant(request_id="r" * 129), "request_id"),
])
async def test_create_tenant_names_the_bad_field_and_writes_nothing(
        mesh: Mesh, request_: tenant_pb2.CreateTenantRequest, field: str) -> None:
    before = await count_rows(mesh.settings, "SELECT count(*) FROM platform.tenants")
    failure = await failure_of(mesh.client.stub.CreateTenant(request_, metadata=bearer(mesh.admin)))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    assert field in failure.message
    assert await count_rows(mesh.settings, "SELECT count(*) FROM platform.tenants") == before
    assert await count_rows(mesh.settings, "SELECT count(*) FROM platform.idempotency_keys") == 0


async def test_every_bad_field_is_named_at_once(mesh: Mesh) -> None:
    failure = await failure_of(mesh.client.stub.CreateTenant(tenant_pb2.CreateTenantRequest(),
                                                             metadata=bearer(mesh.admin)))
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.fields == ["tenant.tenant_id", "tenant.display_name", "tenant.currency_code"]


@pytest.fixture(scope="module")
async def shop(mesh: Mesh) -> AsyncIterator[str]:
    tenant = await mesh.create_tenant("bad-input-shop")
    yield tenant.tenant_id


def _user(email: str = "ok@shop.example", password: str = GOOD_PASSWORD, name: str = "",
          tenant_id: str = "bad-input-shop") -> tenant_pb2.CreateUserRequest:
    return tenant_pb2.CreateUserRequest(tenant_id=tenant_id, email=email, password=password, display_name=name,
                                        role=tenant_pb2.USER_ROLE_SELLER)


@pytest.mark.parametrize(("request_", "field"), [
    (_user(tenant_id=""), "tenant_id"),
    (_user(tenant_id="NOT VALID"), "tenant_id"),
    (_user(email=""), "email"),
    (_user(email="no-at-sign"), "email"),
    (_user(email="a@nodot"), "email"),
    (_user(email="two@@shop.example"), "email"),
    (_user(email="sp ace@shop.example"), "email"),
    (_user(email="nul\x00@shop.example"), "email"),
    (_user(email="x" * 250 + "@shop.example"), "email"),
    (_user(email=HUGE), "email"),
    (_user(password=""), "password"),
    (_user(password="short"), "password"),
    (_user(password="123456789"), "password"),
    (_user(password="p" * 129), "password"),
    (_user(password="control\x1bchar-pw"), "password"),
    (_user(name="x" * 201), "display_name"),
    (_user(name="new\nline"), "display_name"),
    (_user(name=HUGE), "display_name"),
])
async def test_create_user_names_the_bad_field_and_writes_nothing(
        mesh: Mesh, shop: str, request_: tenant_pb2.CreateUserRequest, field: str) -> None:
    failure = await failure_of(mesh.client.stub.CreateUser(request_, metadata=bearer(mesh.admin)))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    assert await count_rows(mesh.settings, "SELECT count(*) FROM t_bad_input_shop.users") == 0


@pytest.mark.parametrize(("request_", "field"), [
    (tenant_pb2.RegisterCustomerRequest(tenant_id="bad-input-shop", email="bad", password=GOOD_PASSWORD), "email"),
    (tenant_pb2.RegisterCustomerRequest(tenant_id="bad-input-shop", email="c@shop.example", password="tiny"),
     "password"),
    (tenant_pb2.RegisterCustomerRequest(tenant_id="bad-input-shop", email="c@shop.example", password=GOOD_PASSWORD,
                                        display_name="tab\there"), "display_name"),
    (tenant_pb2.RegisterCustomerRequest(tenant_id="", email="c@shop.example", password=GOOD_PASSWORD), "tenant_id"),
    (tenant_pb2.RegisterCustomerRequest(tenant_id="bad-input-shop", email="c@shop.example", password=GOOD_PASSWORD,
                                        request_id="no spaces allowed"), "request_id"),
])
async def test_registration_names_the_bad_field_and_writes_nothing(
        mesh: Mesh, shop: str, request_: tenant_pb2.RegisterCustomerRequest, field: str) -> None:
    failure = await failure_of(mesh.client.stub.RegisterCustomer(request_))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
    assert await count_rows(mesh.settings, "SELECT count(*) FROM t_bad_input_shop.users") == 0


@pytest.mark.parametrize(("request_", "field"), [
    (tenant_pb2.LoginRequest(tenant_id="", email="a@shop.example", password="whatever-pw"), "tenant_id"),
    (tenant_pb2.LoginRequest(tenant_id="x" * 1000, email="a@shop.example", password="whatever-pw"), "tenant_id"),
    (tenant_pb2.LoginRequest(tenant_id="bad-input-shop", email="", password="whatever-pw"), "email"),
    (tenant_pb2.LoginRequest(tenant_id="bad-input-shop", email=HUGE, password="whatever-pw"), "email"),
    (tenant_pb2.LoginRequest(tenant_id="bad-input-shop", email="a\x00@shop.example", password="whatever-pw"),
     "email"),
    (tenant_pb2.LoginRequest(tenant_id="bad-input-shop", email="a@shop.example", password=""), "password"),
    (tenant_pb2.LoginRequest(tenant_id="bad-input-shop", email="a@shop.example", password=HUGE), "password"),
])
async def test_login_names_the_bad_field(mesh: Mesh, shop: str, request_: tenant_pb2.LoginRequest,
                                         field: str) -> None:
    failure = await failure_of(mesh.client.stub.Login(request_))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_tenant_ids_in_other_calls_are_checked(mesh: Mesh) -> None:
    for call in (
        mesh.client.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=""), metadata=bearer(mesh.admin)),
        mesh.client.stub.SuspendTenant(tenant_pb2.SuspendTenantRequest(tenant_id="Bad Id"),
                                       metadata=bearer(mesh.admin)),
        mesh.client.stub.CreateGuestToken(tenant_pb2.CreateGuestTokenRequest(tenant_id=HUGE)),
    ):
        failure = await failure_of(call)
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["tenant_id"])
