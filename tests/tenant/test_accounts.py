"""Users, login, guest tokens and suspension, seen through the RPCs; tokens are
checked with PyJWT against the JWKS the service publishes."""

from __future__ import annotations

import statistics
import time
from typing import Any, cast

import grpc
import jwt
from commerce.tenant.v1 import tenant_pb2

from tests.tenant.conftest import OWNER_PASSWORD, Mesh
from tests.tenant.harness import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, count_rows, failure_of

PREFIX = "tt3"
CUSTOMER_PASSWORD = "customer-pass-1"


async def _claims(mesh: Mesh, token: str) -> dict[str, Any]:
    """Verifies the token the way any JWT library would, with the published JWKS."""
    jwks = await mesh.client.stub.GetJwks(tenant_pb2.GetJwksRequest())
    kid = jwt.get_unverified_header(token)["kid"]
    jwk = next(k for k in jwks.keys if k.kid == kid)
    key = jwt.PyJWK({"kty": jwk.kty, "kid": jwk.kid, "use": jwk.use, "alg": jwk.alg, "n": jwk.n, "e": jwk.e})
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=["RS256"], audience=mesh.settings.jwt_audience,
                                        issuer=mesh.settings.jwt_issuer)
    return claims


async def test_login_token_verifies_with_the_jwks_and_carries_the_users_claims(mesh: Mesh) -> None:
    tenant_id, _ = await mesh.tenant_with_owner()
    seller = await mesh.add_user(tenant_id, "Seller@Shop.example", tenant_pb2.USER_ROLE_SELLER)
    assert seller.email == "seller@shop.example"
    before = int(time.time())
    response = await mesh.client.stub.Login(tenant_pb2.LoginRequest(
        tenant_id=tenant_id, email="SELLER@shop.example", password=OWNER_PASSWORD))
    assert (response.token_type, response.expires_in) == ("Bearer", mesh.settings.access_token_ttl_seconds)
    assert response.user.user_id == seller.user_id
    assert response.user.role == tenant_pb2.USER_ROLE_SELLER
    claims = await _claims(mesh, response.access_token)
    assert claims["sub"] == seller.user_id
    assert claims["tenant"] == tenant_id
    assert claims["roles"] == ["seller"]
    assert claims["iss"] == mesh.settings.jwt_issuer and claims["aud"] == mesh.settings.jwt_audience
    assert before <= claims["iat"] == claims["nbf"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + mesh.settings.access_token_ttl_seconds
    assert claims["jti"]


async def test_admin_logs_in_to_the_platform_tenant(mesh: Mesh) -> None:
    claims = await _claims(mesh, mesh.admin)
    assert (claims["tenant"], claims["roles"]) == ("platform", ["admin"])


async def test_wrong_password_unknown_email_and_unknown_tenant_are_all_invalid_credentials(mesh: Mesh) -> None:
    tenant_id, _ = await mesh.tenant_with_owner()
    for tenant, email, password in [
        (tenant_id, "owner@shop.example", "wrong-password"),
        (tenant_id, "nobody@shop.example", OWNER_PASSWORD),
        ("no-such-tenant", "owner@shop.example", OWNER_PASSWORD),
        ("platform", "owner@shop.example", OWNER_PASSWORD),
        ("platform", ADMIN_EMAIL, "wrong-password"),
    ]:
        failure = await failure_of(mesh.client.stub.Login(tenant_pb2.LoginRequest(
            tenant_id=tenant, email=email, password=password)))
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS"), tenant


async def test_an_unknown_email_takes_as_long_as_a_wrong_password(mesh: Mesh) -> None:
    tenant_id, _ = await mesh.tenant_with_owner()

    async def timed(email: str) -> float:
        started = time.perf_counter()
        await failure_of(mesh.client.stub.Login(tenant_pb2.LoginRequest(
            tenant_id=tenant_id, email=email, password="wrong-password")))
        return time.perf_counter() - started

    known = statistics.median([await timed("owner@shop.example") for _ in range(3)])
    unknown = statistics.median([await timed("nobody@shop.example") for _ in range(3)])
    # A password verification dominates both (tens of ms); skipping it would be ~100x faster.
    assert unknown > known * 0.5


async def test_customer_registers_logs_in_and_an_email_registers_only_once(mesh: Mesh) -> None:
    tenant_id, _ = await mesh.tenant_with_owner()
    registered = await mesh.client.stub.RegisterCustomer(tenant_pb2.RegisterCustomerRequest(
        tenant_id=tenant_id, email="Ann@Example.com", password=CUSTOMER_PASSWORD, display_name="Ann"))
    assert registered.user.role == tenant_pb2.USER_ROLE_CUSTOMER
    assert registered.user.email == "ann@example.com"
    assert registered.user.name == f"tenants/{tenant_id}/users/{registered.user.user_id}"
    token = await mesh.client.login(tenant_id, "ann@example.com", CUSTOMER_PASSWORD)
    claims = await _claims(mesh, token)
    assert (claims["sub"], claims["roles"]) == (registered.user.user_id, ["customer"])
    failure = await failure_of(mesh.client.stub.RegisterCustomer(tenant_pb2.RegisterCustomerRequest(
        tenant_id=tenant_id, email="ANN@example.com", password="another-pass-1")))
    assert failure.code == grpc.StatusCode.ALREADY_EXISTS
    # A customer may not read the tenant or create users.
    failure = await failure_of(mesh.client.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=tenant_id),
                                                          metadata=bearer(token)))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED


async def test_registration_retry_with_the_same_request_id_returns_the_same_customer(mesh: Mesh) -> None:
    tenant_id, _ = await mesh.tenant_with_owner()
    request = tenant_pb2.RegisterCustomerRequest(tenant_id=tenant_id, email="bob@example.com",
                                                 password=CUSTOMER_PASSWORD, request_id="reg-1")
    first = await mesh.client.stub.RegisterCustomer(request)
    again = await mesh.client.stub.RegisterCustomer(request)
    assert again.user == first.user


async def test_registration_for_an_unknown_tenant_is_not_found(mesh: Mesh) -> None:
    failure = await failure_of(mesh.client.stub.RegisterCustomer(tenant_pb2.RegisterCustomerRequest(
        tenant_id="no-such-tenant", email="x@example.com", password=CUSTOMER_PASSWORD)))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_owner_creates_a_seller_who_can_log_in(mesh: Mesh) -> None:
    tenant_id, owner = await mesh.tenant_with_owner()
    seller = await mesh.add_user(tenant_id, "sam@shop.example", tenant_pb2.USER_ROLE_SELLER,
                                 password="sellers-password", token=owner)
    assert (seller.tenant_id, seller.role) == (tenant_id, tenant_pb2.USER_ROLE_SELLER)
    token = await mesh.client.login(tenant_id, "sam@shop.example", "sellers-password")
    assert (await _claims(mesh, token))["roles"] == ["seller"]
    # A seller may not create users.
    failure = await failure_of(mesh.client.stub.CreateUser(tenant_pb2.CreateUserRequest(
        tenant_id=tenant_id, email="x@shop.example", password="sellers-password",
        role=tenant_pb2.USER_ROLE_SELLER), metadata=bearer(token)))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    # The email is taken now, whatever its case.
    failure = await failure_of(mesh.client.stub.CreateUser(tenant_pb2.CreateUserRequest(
        tenant_id=tenant_id, email="SAM@shop.example", password="sellers-password",
        role=tenant_pb2.USER_ROLE_OWNER), metadata=bearer(owner)))
    assert failure.code == grpc.StatusCode.ALREADY_EXISTS


async def test_owner_cannot_create_users_in_another_tenant(mesh: Mesh) -> None:
    _, owner_a = await mesh.tenant_with_owner()
    tenant_b, _ = await mesh.tenant_with_owner()
    failure = await failure_of(mesh.client.stub.CreateUser(tenant_pb2.CreateUserRequest(
        tenant_id=tenant_b, email="intruder@shop.example", password="intruder-pass",
        role=tenant_pb2.USER_ROLE_OWNER), metadata=bearer(owner_a)))
    assert failure.code == grpc.StatusCode.NOT_FOUND
    schema = "t_" + tenant_b.replace("-", "_")
    assert await count_rows(mesh.settings, f"SELECT count(*) FROM {schema}.users WHERE email LIKE 'intruder%'") == 0
    failure = await failure_of(mesh.client.stub.Login(tenant_pb2.LoginRequest(
        tenant_id=tenant_b, email="intruder@shop.example", password="intruder-pass")))
    assert failure.code == grpc.StatusCode.UNAUTHENTICATED


async def test_staff_roles_other_than_owner_and_seller_are_refused(mesh: Mesh) -> None:
    tenant_id, owner = await mesh.tenant_with_owner()
    unknown_role = cast(tenant_pb2.UserRole, 42)
    for role in (tenant_pb2.USER_ROLE_CUSTOMER, tenant_pb2.USER_ROLE_UNSPECIFIED, unknown_role):
        failure = await failure_of(mesh.client.stub.CreateUser(tenant_pb2.CreateUserRequest(
            tenant_id=tenant_id, email="r@shop.example", password="long-password", role=role),
            metadata=bearer(owner)))
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["role"])


async def test_guest_token_names_a_fresh_guest_of_the_tenant(mesh: Mesh) -> None:
    tenant_id, _ = await mesh.tenant_with_owner()
    first = await mesh.client.stub.CreateGuestToken(tenant_pb2.CreateGuestTokenRequest(tenant_id=tenant_id))
    second = await mesh.client.stub.CreateGuestToken(tenant_pb2.CreateGuestTokenRequest(tenant_id=tenant_id))
    assert first.subject.startswith("guest:") and first.subject != second.subject
    assert first.expires_in == mesh.settings.guest_token_ttl_seconds
    claims = await _claims(mesh, first.access_token)
    assert (claims["sub"], claims["tenant"], claims["roles"]) == (first.subject, tenant_id, ["guest"])
    failure = await failure_of(mesh.client.stub.CreateGuestToken(tenant_pb2.CreateGuestTokenRequest(
        tenant_id="no-such-tenant")))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_a_suspended_tenant_refuses_logins_guests_and_new_users(mesh: Mesh) -> None:
    tenant_id, owner = await mesh.tenant_with_owner()
    suspended = await mesh.client.stub.SuspendTenant(tenant_pb2.SuspendTenantRequest(
        tenant_id=tenant_id, request_id="suspend-1"), metadata=bearer(mesh.admin))
    assert suspended.tenant.state == tenant_pb2.TENANT_STATE_SUSPENDED
    again = await mesh.client.stub.SuspendTenant(tenant_pb2.SuspendTenantRequest(
        tenant_id=tenant_id, request_id="suspend-1"), metadata=bearer(mesh.admin))
    assert again.tenant == suspended.tenant

    failure = await failure_of(mesh.client.stub.Login(tenant_pb2.LoginRequest(
        tenant_id=tenant_id, email="owner@shop.example", password=OWNER_PASSWORD)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TENANT_SUSPENDED")
    failure = await failure_of(mesh.client.stub.Login(tenant_pb2.LoginRequest(
        tenant_id=tenant_id, email="owner@shop.example", password="wrong-password")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    failure = await failure_of(mesh.client.stub.CreateGuestToken(tenant_pb2.CreateGuestTokenRequest(
        tenant_id=tenant_id)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TENANT_SUSPENDED")
    failure = await failure_of(mesh.client.stub.RegisterCustomer(tenant_pb2.RegisterCustomerRequest(
        tenant_id=tenant_id, email="late@example.com", password=CUSTOMER_PASSWORD)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TENANT_SUSPENDED")
    failure = await failure_of(mesh.client.stub.CreateUser(tenant_pb2.CreateUserRequest(
        tenant_id=tenant_id, email="new@shop.example", password="long-password",
        role=tenant_pb2.USER_ROLE_SELLER), metadata=bearer(mesh.admin)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "TENANT_SUSPENDED")
    # The owner's token from before: refused as soon as the suspension is known (tests/tenant/test_revocation.py),
    # and the tenant refuses new staff either way.
    failure = await failure_of(mesh.client.stub.CreateUser(tenant_pb2.CreateUserRequest(
        tenant_id=tenant_id, email="new@shop.example", password="long-password",
        role=tenant_pb2.USER_ROLE_SELLER), metadata=bearer(owner)))
    assert (failure.code, failure.reason) in {(grpc.StatusCode.FAILED_PRECONDITION, "TENANT_SUSPENDED"),
                                              (grpc.StatusCode.UNAUTHENTICATED, "TENANT_SUSPENDED")}
    # The admin still sees it; other tenants are unaffected.
    other, _ = await mesh.tenant_with_owner()
    assert await mesh.client.login(other, "owner@shop.example", OWNER_PASSWORD)


async def test_suspending_an_unknown_tenant_is_not_found(mesh: Mesh) -> None:
    failure = await failure_of(mesh.client.stub.SuspendTenant(tenant_pb2.SuspendTenantRequest(
        tenant_id="no-such-tenant"), metadata=bearer(mesh.admin)))
    assert failure.code == grpc.StatusCode.NOT_FOUND


async def test_platform_admin_password_is_checked(mesh: Mesh) -> None:
    token = await mesh.client.login("platform", ADMIN_EMAIL.upper(), ADMIN_PASSWORD)
    assert (await _claims(mesh, token))["roles"] == ["admin"]
