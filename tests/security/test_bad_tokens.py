"""Bad tokens are refused twice: at the edge (REST through Envoy -> 401) and again
on a service's own port (gRPC UNAUTHENTICATED), because internal callers bypass
Envoy. Valid-looking tokens are minted with the mesh's real signing key (the
PEM files in its keys folder) and then spoiled one way each.

Tokens of a tenant suspended, or of a user deleted, after they were issued are
refused too (the services learn revocations from the tenant service's events).

Signing-key rotation last: the JWKS carries the old and the new key at once,
the new key signs only once the edge's cached JWKS has it, tokens issued
before keep working, and the first token of the new key passes everywhere."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import jwt
import pytest
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from commerce.order.v1 import order_pb2, order_pb2_grpc
from commerce.payment.v1 import payment_pb2, payment_pb2_grpc
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc

from services.devmesh.mesh import Mesh
from services.tenant.keys import KeyStore, SigningKey
from tests.e2e.harness import Account, Shop, confirmed_order, login, open_shop, stocked_product, wait_until
from tests.errors import reason_of
from tests.security.conftest import Tenant
from tests.security.minter import BAD_TOKENS, Minter

LIST_PRODUCTS = "/v1/products"


def edge_status(rest: httpx.Client, token: str) -> int:
    return rest.get(LIST_PRODUCTS, headers={"authorization": f"Bearer {token}"}).status_code


def service_code(mesh: Mesh, token: str, service: str = "catalog") -> grpc.StatusCode:
    return service_refusal(mesh, token, service)[0]


def service_refusal(mesh: Mesh, token: str, service: str = "catalog",
                    address: str | None = None) -> tuple[grpc.StatusCode, str]:
    """The answer (code, ErrorInfo reason) of a read the token's seller may make, sent straight to the
    service's port (or to ``address``, e.g. the edge's)."""
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address or mesh.address_of(service)) as channel:
        try:
            if service == "catalog":
                catalog_pb2_grpc.CatalogServiceStub(channel).ListProducts(
                    catalog_pb2.ListProductsRequest(), metadata=metadata, timeout=10)
            elif service == "order":
                order_pb2_grpc.OrderServiceStub(channel).ListOrders(
                    order_pb2.ListOrdersRequest(), metadata=metadata, timeout=10)
            elif service == "payment":
                payment_pb2_grpc.PaymentServiceStub(channel).ListPayments(
                    payment_pb2.ListPaymentsRequest(), metadata=metadata, timeout=10)
            else:
                tenant_id = str(jwt.decode(token, options={"verify_signature": False})["tenant"])
                tenant_pb2_grpc.TenantServiceStub(channel).GetTenant(
                    tenant_pb2.GetTenantRequest(tenant_id=tenant_id), metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code, reason_of(error)
    return grpc.StatusCode.OK, ""


def test_a_token_minted_with_the_mesh_key_is_accepted_at_the_edge_and_the_service(
        minter: Minter, mesh: Mesh, rest: httpx.Client) -> None:
    # The control: every refusal below comes from the one thing spoiled, not from the minting.
    token = minter.valid()
    assert edge_status(rest, token) == 200
    assert service_code(mesh, token) == grpc.StatusCode.OK
    assert service_code(mesh, token, "tenant") == grpc.StatusCode.OK


@pytest.mark.parametrize(("spoil", "reason"), list(BAD_TOKENS.values()), ids=list(BAD_TOKENS))
def test_a_bad_token_is_refused_with_one_reason_at_the_edge_and_on_the_service_port(
        spoil: Callable[[Minter], str], reason: str, minter: Minter, mesh: Mesh, rest: httpx.Client) -> None:
    token = spoil(minter)
    reply = rest.get(LIST_PRODUCTS, headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 401, reply.text  # a wrong audience too (jwt_authn's own answer is 403)
    assert reply.json()["details"][0]["reason"] == reason, reply.text
    assert service_refusal(mesh, token, address=mesh.edge_address) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    assert service_refusal(mesh, token) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    assert service_refusal(mesh, token, "tenant") == (grpc.StatusCode.UNAUTHENTICATED, reason)


def _wait_refused(mesh: Mesh, rest: httpx.Client, token: str, reason: str) -> None:
    """Revocations reach every service as events (tenant outbox -> JetStream -> each process):
    wait until the service port refuses the token, then it is refused everywhere."""
    wait_until(f"the catalog service refusing the token ({reason})",
               lambda: service_code(mesh, token) == grpc.StatusCode.UNAUTHENTICATED, 10)
    for service in ("catalog", "tenant", "order", "payment"):
        assert service_code(mesh, token, service) == grpc.StatusCode.UNAUTHENTICATED, service
    reply = rest.get(LIST_PRODUCTS, headers={"authorization": f"Bearer {token}"})
    # Envoy's jwt_authn has no deny list: the refusal comes from the service behind it, as a JSON
    # google.rpc.Status with the reason, on the same 401 as every other bad token.
    assert reply.status_code == 401, reply.text
    assert reason in reply.text


def test_a_token_of_a_tenant_suspended_after_it_was_issued_is_refused(
        mesh: Mesh, rest: httpx.Client, admin: Account) -> None:
    tenant_id = f"sec-susp-{uuid.uuid4().hex[:6]}"
    shop = open_shop(rest, admin, tenant_id)
    other = open_shop(rest, admin, f"sec-live-{uuid.uuid4().hex[:6]}")
    assert edge_status(rest, shop.seller.token) == 200
    assert service_code(mesh, shop.customer.token, "tenant") != grpc.StatusCode.UNAUTHENTICATED
    reply = rest.post(f"/v1/tenants/{tenant_id}:suspend", headers=admin.auth, json={})
    assert reply.status_code == 200, reply.text
    refused_login = rest.post("/v1/auth/login", json={"tenantId": tenant_id, "email": shop.seller.email,
                                                      "password": shop.seller.password})
    assert refused_login.status_code == 401
    _wait_refused(mesh, rest, shop.seller.token, "TENANT_SUSPENDED")
    _wait_refused(mesh, rest, shop.customer.token, "TENANT_SUSPENDED")
    # Another tenant's users and the platform admin are not affected.
    assert edge_status(rest, other.seller.token) == 200
    assert service_code(mesh, other.seller.token) == grpc.StatusCode.OK
    assert rest.get(f"/v1/tenants/{tenant_id}", headers=admin.auth).status_code == 200


def test_a_token_of_a_deleted_user_is_refused(mesh: Mesh, rest: httpx.Client, admin: Account) -> None:
    tenant_id = f"sec-del-{uuid.uuid4().hex[:6]}"
    shop = open_shop(rest, admin, tenant_id)
    second = rest.post(f"/v1/tenants/{tenant_id}/users", headers=admin.auth, json={
        "email": f"second@{tenant_id}.test", "password": "a-long-enough-password", "role": "USER_ROLE_SELLER"})
    assert second.status_code == 200, second.text
    second_token = login(rest, tenant_id, f"second@{tenant_id}.test", "a-long-enough-password")
    seller_id = shop.seller.subject
    assert edge_status(rest, shop.seller.token) == 200
    reply = rest.delete(f"/v1/tenants/{tenant_id}/users/{seller_id}", headers=admin.auth)
    assert reply.status_code == 200, reply.text
    _wait_refused(mesh, rest, shop.seller.token, "USER_DELETED")
    refused_login = rest.post("/v1/auth/login", json={"tenantId": tenant_id, "email": shop.seller.email,
                                                      "password": shop.seller.password})
    assert refused_login.status_code == 401
    # The tenant's other users keep working.
    assert edge_status(rest, second_token) == 200
    assert edge_status(rest, shop.customer.token) == 200


# --- signing-key rotation ---------------------------------------------------------------------


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _jwks_kids(mesh: Mesh) -> set[str]:
    with grpc.insecure_channel(mesh.address_of("tenant")) as channel:
        reply = tenant_pb2_grpc.TenantServiceStub(channel).GetJwks(tenant_pb2.GetJwksRequest(), timeout=10)
    return {key.kid for key in reply.keys}


class Rotation:
    def __init__(self, old_kid: str, new: SigningKey, old_token: str, new_token: str, edge_fetches: int) -> None:
        self.old_kid, self.new, self.old_token, self.new_token = old_kid, new, old_token, new_token
        self.edge_fetches = edge_fetches


def _login(rest: httpx.Client, shop: Shop) -> str:
    return login(rest, shop.tenant_id, shop.seller.email, shop.seller.password)


@pytest.fixture(scope="module")
def rotation(mesh: Mesh, rest: httpx.Client, tenant_a: Tenant) -> Iterator[Rotation]:
    """`python -m services.tenant rotate-key` on the mesh's key folder (KeyStore.add_key is what it
    runs): the new key is published at once and signs key_activation_seconds later (the test mesh
    caches the JWKS at the edge for a few seconds, so that is seconds here). The first login signed
    by the new key is kept. Afterwards the new key file is removed again and the tenant service signs
    with the old key, so the rest of the session's tests are not affected."""
    store = KeyStore(mesh.settings.keys_dir, activation_seconds=mesh.settings.key_activation_seconds())
    old_kid = store.signing_key().kid
    old_token = _login(rest, tenant_a.shop)
    assert _kid(old_token) == old_kid
    assert mesh.envoy is not None
    fetches = mesh.envoy.counter("jwks_fetch_success")
    new = store.add_key()
    tokens: list[str] = []

    def signed_by_new_key() -> bool:
        tokens.append(_login(rest, tenant_a.shop))
        return _kid(tokens[-1]) == new.kid

    try:
        wait_until("the JWKS publishing the new key", lambda: new.kid in _jwks_kids(mesh),
                   mesh.settings.keys_reload_seconds + 5)
        # Published, not signing yet: tokens issued now still carry the old key.
        before = _login(rest, tenant_a.shop)
        assert time.time() >= store.signs_from(new) or _kid(before) == old_kid
        time.sleep(max(0.0, store.signs_from(new) - time.time()))
        wait_until("the tenant service signing with the new key", signed_by_new_key,
                   mesh.settings.keys_reload_seconds + 5)
        yield Rotation(old_kid, new, old_token, tokens[-1], fetches)
    finally:
        Path(new.path).unlink()
        wait_until("the JWKS dropping the removed key", lambda: new.kid not in _jwks_kids(mesh),
                   mesh.settings.keys_reload_seconds + 5)
        wait_until("the tenant service signing with the old key again",
                   lambda: _kid(_login(rest, tenant_a.shop)) == old_kid, mesh.settings.keys_reload_seconds + 5)


def test_after_rotation_the_jwks_carries_the_old_and_the_new_key(rotation: Rotation, mesh: Mesh,
                                                                  rest: httpx.Client) -> None:
    assert {rotation.old_kid, rotation.new.kid} <= _jwks_kids(mesh)
    reply = rest.get("/.well-known/jwks.json")
    assert reply.status_code == 200
    assert {rotation.old_kid, rotation.new.kid} <= {k["kid"] for k in reply.json()["keys"]}


def test_after_rotation_a_token_issued_before_still_works_everywhere(rotation: Rotation, mesh: Mesh,
                                                                     rest: httpx.Client) -> None:
    assert edge_status(rest, rotation.old_token) == 200
    for service in ("catalog", "tenant"):
        assert service_code(mesh, rotation.old_token, service) == grpc.StatusCode.OK


def test_after_rotation_a_token_of_the_new_key_works_at_the_services_at_once(rotation: Rotation,
                                                                           mesh: Mesh) -> None:
    # A service that does not know the kid fetches the JWKS again; the key was published well
    # before it signed, so that fetch finds it: no restart, no refusal.
    for service in ("catalog", "tenant", "order", "payment"):
        assert service_code(mesh, rotation.new_token, service) == grpc.StatusCode.OK, service


def test_after_rotation_the_first_token_of_the_new_key_works_at_the_edge_at_once(
        rotation: Rotation, mesh: Mesh, rest: httpx.Client) -> None:
    # The new key signs only once Envoy's cached JWKS has it: the very first token it signed
    # passes the edge on its first try (no retry, no wait), and Envoy did fetch the JWKS again.
    assert edge_status(rest, rotation.new_token) == 200
    assert mesh.envoy is not None
    assert mesh.envoy.counter("jwks_fetch_success") > rotation.edge_fetches


# --- streams outlive the checks at their start ------------------------------------------------


def test_a_watch_stream_sends_nothing_more_once_its_users_token_is_revoked(
        mesh: Mesh, rest: httpx.Client, admin: Account) -> None:
    tenant_id = f"sec-watch-{uuid.uuid4().hex[:6]}"
    shop = open_shop(rest, admin, tenant_id)
    order_id = str(confirmed_order(rest, shop.customer, stocked_product(rest, shop.seller, on_hand=5))["orderId"])
    owner_password = "a-long-enough-password"
    made = rest.post(f"/v1/tenants/{tenant_id}/users", headers=admin.auth, json={
        "email": f"owner@{tenant_id}.test", "password": owner_password, "role": "USER_ROLE_OWNER"})
    assert made.status_code == 200, made.text
    owner = {"authorization": f"Bearer {login(rest, tenant_id, f'owner@{tenant_id}.test', owner_password)}"}
    seller_id = shop.seller.subject
    with grpc.insecure_channel(mesh.address_of("order")) as channel:
        stream = order_pb2_grpc.OrderServiceStub(channel).WatchOrder(
            order_pb2.WatchOrderRequest(order_id=order_id),
            metadata=(("authorization", f"Bearer {shop.seller.token}"),), timeout=30)
        first = next(stream)
        assert first.order.order_id == order_id  # the watcher is let in and sees the order
        # The owner deletes the watching seller, then ships the order: a change the stream would carry.
        assert rest.delete(f"/v1/tenants/{tenant_id}/users/{seller_id}", headers=owner).status_code == 200
        wait_until("the order service refusing the deleted seller",
                   lambda: service_code(mesh, shop.seller.token, "order") == grpc.StatusCode.UNAUTHENTICATED, 10)
        shipped = rest.post(f"/v1/orders/{order_id}:ship", headers=owner,
                            json={"carrier": "UPS", "trackingNumber": "1Z999"})
        assert shipped.status_code == 200, shipped.text
        with pytest.raises(grpc.RpcError) as ended:
            for update in stream:
                assert update.order.status != order_pb2.ORDER_STATUS_SHIPPED, "a revoked token still gets updates"
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED, ended.value
