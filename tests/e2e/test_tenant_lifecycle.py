"""A tenant's life through the real mesh (Envoy, every service as a process, NATS): a suspended
tenant resumed works again for tokens issued after the resume while older ones stay refused;
a deleted customer's cart is gone."""

from __future__ import annotations

import httpx

from services.devmesh.mesh import Mesh
from tests.e2e.harness import (
    Account,
    count,
    login,
    new_customer,
    ok,
    open_shop,
    stocked_product,
    wait_until,
)


def _refusal(rest: httpx.Client, token: str, path: str = "/v1/cart") -> str:
    """The ErrorInfo reason of a 401 ("" when the call was answered)."""
    reply = rest.get(path, headers={"authorization": f"Bearer {token}"})
    if reply.status_code == 200:
        return ""
    assert reply.status_code == 401, reply.text
    return str(reply.json()["details"][0]["reason"])


def test_a_resumed_tenant_accepts_tokens_issued_after_the_resume_and_still_refuses_older_ones(
        rest: httpx.Client, admin: Account) -> None:
    shop = open_shop(rest, admin, "resumed-shop")
    old = shop.customer.token
    assert _refusal(rest, old) == ""

    ok(rest.post(f"/v1/tenants/{shop.tenant_id}:suspend", headers=admin.auth, json={}))
    wait_until("the old token refused", lambda: _refusal(rest, old) == "TENANT_SUSPENDED", 10)
    refused = rest.post("/v1/auth/login", json={"tenantId": shop.tenant_id, "email": shop.customer.email,
                                                "password": shop.customer.password})
    assert refused.status_code == 401

    resumed = ok(rest.post(f"/v1/tenants/{shop.tenant_id}:resume", headers=admin.auth, json={}))
    assert resumed["tenant"]["state"] == "TENANT_STATE_ACTIVE"
    fresh = login(rest, shop.tenant_id, shop.customer.email, shop.customer.password)
    for path in ("/v1/cart", "/v1/products?pageSize=1", "/v1/orders"):  # cart, catalog, order
        assert _refusal(rest, fresh, path) == "", path
        assert _refusal(rest, old, path) == "TENANT_SUSPENDED", path
    # a second resume changes nothing
    again = ok(rest.post(f"/v1/tenants/{shop.tenant_id}:resume", headers=admin.auth, json={}))
    assert again["tenant"]["state"] == "TENANT_STATE_ACTIVE"


def test_deleting_a_customer_deletes_their_cart(mesh: Mesh, rest: httpx.Client, admin: Account) -> None:
    shop = open_shop(rest, admin, "forget-shop")
    product_id = stocked_product(rest, shop.seller, on_hand=10)
    buyer, other = new_customer(rest, shop), new_customer(rest, shop)
    for account in (buyer, other):
        ok(rest.post("/v1/cart/items", headers=account.auth, json={"productId": product_id, "quantity": "2"}))
    schema = "t_" + shop.tenant_id.replace("-", "_")

    def carts_of(account: Account) -> int:
        return count(mesh, "cart", f"SELECT count(*) FROM {schema}.carts WHERE customer_id = '{account.subject}'")

    assert carts_of(buyer) == 1
    deleted = rest.delete(f"/v1/tenants/{shop.tenant_id}/users/{buyer.subject}", headers=admin.auth)
    assert deleted.status_code == 200, deleted.text
    wait_until("the deleted customer's cart deleted", lambda: carts_of(buyer) == 0, 15)
    assert count(mesh, "cart", f"SELECT count(*) FROM {schema}.cart_lines l JOIN {schema}.carts c "
                               f"USING (cart_id) WHERE c.customer_id = '{buyer.subject}'") == 0
    assert carts_of(other) == 1  # nobody else's
    assert ok(rest.get("/v1/cart", headers=other.auth))["cart"]["lines"][0]["quantity"] == "2"
