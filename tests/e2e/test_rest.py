"""REST/JSON through Envoy, as a web frontend calls it."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.e2e.harness import Account, Shop, create_product, product_json
from tests.tokens import TestKeys


def skus_listed(rest: httpx.Client, account: Account, **params: str) -> list[str]:
    """Every SKU the listing returns, following nextPageToken until it is empty."""
    skus: list[str] = []
    token = ""
    for _ in range(100):
        reply = rest.get("/v1/products", headers=account.auth, params={**params, "pageToken": token})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        skus += [p["sku"] for p in body["products"]]
        token = body["nextPageToken"]
        if not token:
            return skus
    raise AssertionError("the listing never ended")


def test_seller_logs_in_and_gets_a_bearer_token(rest: httpx.Client, shop_a: Shop) -> None:
    reply = rest.post("/v1/auth/login", json={"tenantId": shop_a.tenant_id, "email": shop_a.seller.email,
                                              "password": shop_a.seller.password})
    assert reply.status_code == 200
    body = reply.json()
    assert body["tokenType"] == "Bearer" and int(body["expiresIn"]) > 0 and body["accessToken"].count(".") == 2


def test_the_jwks_is_published_through_the_edge(rest: httpx.Client) -> None:
    keys = rest.get("/.well-known/jwks.json").json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["alg"] == "RS256" for k in keys)


def test_seller_creates_a_product_and_everyone_in_the_tenant_reads_it(rest: httpx.Client, shop_a: Shop) -> None:
    created = create_product(rest, shop_a.seller, title="Blue mug", price_minor=1250)
    assert created["productId"] and created["status"] == "PRODUCT_STATUS_ACTIVE"
    for reader in (shop_a.seller, shop_a.customer):
        reply = rest.get(f"/v1/products/{created['productId']}", headers=reader.auth)
        assert reply.status_code == 200
        assert reply.json()["product"]["price"] == {"currencyCode": "USD", "amountMinor": "1250"}


def test_filtered_listing_pages_through_every_match_exactly_once(rest: httpx.Client, shop_a: Shop) -> None:
    category = f"paging-{uuid.uuid4().hex[:6]}"
    prices = [500, 999, 1000, 1500, 1999, 2000, 2001, 2500, 1200]
    made = {create_product(rest, shop_a.seller, category=category, price_minor=p)["sku"]: p for p in prices}
    create_product(rest, shop_a.seller, category="elsewhere", price_minor=1500)
    listed = skus_listed(rest, shop_a.customer, category=category, minPriceMinor="1000", maxPriceMinor="2000",
                         pageSize="2")
    expected = {sku for sku, price in made.items() if 1000 <= price <= 2000}
    assert sorted(listed) == sorted(expected)
    assert len(listed) == len(set(listed)) == 5


def test_unknown_product_is_404_with_a_json_status_code_5(rest: httpx.Client, shop_a: Shop) -> None:
    reply = rest.get("/v1/products/prd_01JZZZZZZZZZZZZZZZZZZZZZZZ", headers=shop_a.seller.auth)
    assert reply.status_code == 404
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json()["code"] == 5


def test_an_invalid_field_is_400_naming_the_field(rest: httpx.Client, shop_a: Shop) -> None:
    body = {"product": {**product_json(), "title": ""}}
    reply = rest.post("/v1/products", headers=shop_a.seller.auth, json=body)
    assert reply.status_code == 400
    status = reply.json()
    assert status["code"] == 3
    assert "title" in status["message"] or "title" in str(status.get("details"))


def test_no_token_is_401(rest: httpx.Client) -> None:
    reply = rest.post("/v1/products", json={"product": product_json()})
    assert reply.status_code == 401
    assert reply.json()["code"] == 16


@pytest.mark.parametrize("token", ["garbage", "a.b.c", TestKeys().mint(tenant="shop-a", roles=["seller"])],
                         ids=["not-a-jwt", "bad-segments", "signed-by-an-unknown-key"])
def test_an_invalid_token_is_refused_at_the_edge(rest: httpx.Client, token: str) -> None:
    reply = rest.get("/v1/products", headers={"authorization": f"Bearer {token}"})
    assert reply.status_code == 401
    assert "invalid_token" in reply.headers.get("www-authenticate", "")  # Envoy's jwt_authn, not the service
    assert reply.json()["code"] == 16


def test_a_customer_cannot_create_products(rest: httpx.Client, shop_a: Shop) -> None:
    reply = rest.post("/v1/products", headers=shop_a.customer.auth, json={"product": product_json()})
    assert reply.status_code == 403
    assert reply.json()["code"] == 7


def test_another_tenant_never_sees_a_tenants_products(rest: httpx.Client, shop_a: Shop, shop_b: Shop) -> None:
    secret = create_product(rest, shop_a.seller, category="tenant-a-only")
    assert secret["sku"] not in skus_listed(rest, shop_b.seller, pageSize="100")
    assert skus_listed(rest, shop_b.customer, category="tenant-a-only") == []
    reply = rest.get(f"/v1/products/{secret['productId']}", headers=shop_b.seller.auth)
    assert reply.status_code == 404


BAD_BODIES = {
    "malformed-json": b'{"product": {"sku": "BAD-JSON", ',
    "unknown-field": b'{"product": {"sku": "BAD-UNKNOWN", "title": "t", "category": "c", "colour": "red", '
                     b'"price": {"currencyCode": "USD", "amountMinor": "100"}}}',
    "fractional-price": b'{"product": {"sku": "BAD-FRACTION", "title": "t", "category": "c", '
                        b'"price": {"currencyCode": "USD", "amountMinor": 10.5}}}',
    "non-utf8": b'{"product": {"sku": "BAD-UTF8", "title": "\xff\xfe", "category": "c", '
                b'"price": {"currencyCode": "USD", "amountMinor": "100"}}}',
    "negative-price": b'{"product": {"sku": "BAD-NEGATIVE", "title": "t", "category": "c", '
                      b'"price": {"currencyCode": "USD", "amountMinor": "-100"}}}',
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_bad_input_is_a_4xx_and_nothing_is_written(rest: httpx.Client, shop_a: Shop, body: bytes) -> None:
    reply = rest.post("/v1/products", headers={**shop_a.seller.auth, "content-type": "application/json"},
                      content=body)
    assert 400 <= reply.status_code < 500, reply.text
    assert reply.json()["code"] == 3
    assert not [s for s in skus_listed(rest, shop_a.seller, query="BAD-", pageSize="100") if s.startswith("BAD-")]


def test_an_unknown_field_is_named_in_the_refusal(rest: httpx.Client, shop_a: Shop) -> None:
    reply = rest.post("/v1/products", headers={**shop_a.seller.auth, "content-type": "application/json"},
                      content=BAD_BODIES["unknown-field"])
    assert reply.status_code == 400
    assert "product.colour" in reply.json()["message"]


@pytest.mark.parametrize("path", ["/v1/nothing", "/v2/products", "/", "/v1/products/x/y/z"])
def test_an_unknown_rest_path_is_404_json(rest: httpx.Client, shop_a: Shop, path: str) -> None:
    reply = rest.get(path, headers=shop_a.seller.auth)
    assert reply.status_code == 404
    assert reply.json()["code"] == 5


def test_an_unknown_query_parameter_is_400_naming_it(rest: httpx.Client, shop_a: Shop) -> None:
    reply = rest.get("/v1/products", headers=shop_a.seller.auth, params={"colour": "red"})
    assert reply.status_code == 400
    assert "colour" in reply.json()["message"]


def test_search_with_filter_order_and_facets_through_the_edge(rest: httpx.Client, shop_a: Shop) -> None:
    category = f"rsearch-{uuid.uuid4().hex[:6]}"
    for n, (price, color) in enumerate([(500, "red"), (1500, "red"), (2500, "blue"), (3500, "red")]):
        reply = rest.post("/v1/products", headers=shop_a.seller.auth, json={"product": {
            **product_json(category=category, price_minor=price), "title": f"Edge lantern {n}",
            "attributes": {"color": color}}})
        assert reply.status_code == 200, reply.text
    reply = rest.get("/v1/products", headers=shop_a.customer.auth, params=[
        ("query", "lanterns"), ("filter", f'category = "{category}" AND attributes.color = "red"'),
        ("orderBy", "price desc"), ("pageSize", "2"), ("facets", "attributes.color"), ("facets", "price"),
        ("priceBuckets", "1000"), ("priceBuckets", "3000")])
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [p["price"]["amountMinor"] for p in body["products"]] == ["3500", "1500"] and body["nextPageToken"]
    assert body["totalSize"] == 3
    facets = {f["field"]: {v["value"]: int(v["count"]) for v in f["values"]} for f in body["facets"]}
    assert facets == {"price": {"[0,1000)": 1, "[1000,3000)": 1, "[3000,)": 1}, "attributes.color": {"red": 3}}
    bad = rest.get("/v1/products", headers=shop_a.customer.auth, params={"filter": "price >"})
    assert bad.status_code == 400
    assert bad.json()["details"][1]["fieldViolations"][0]["field"] == "filter"
    info = bad.json()["details"][0]  # the same ErrorInfo a gRPC caller gets, its metadata included
    assert info["reason"] == "INVALID_FILTER" and info["metadata"]["position"] == "8", info


def test_import_and_export_through_the_edge(rest: httpx.Client, shop_a: Shop) -> None:
    sku = f"REST-IMP-{uuid.uuid4().hex[:6]}"
    reply = rest.post("/v1/products:import", headers=shop_a.seller.auth, json={"entries": [
        {"product": product_json(sku), "onHand": "7"}, {"product": {**product_json(), "title": ""}},
        {"product": {**product_json(), "price": {"currencyCode": "XXX", "amountMinor": "1"}}}]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [r["outcome"] for r in body["results"]] == ["IMPORT_OUTCOME_CREATED"] + ["IMPORT_OUTCOME_FAILED"] * 2
    assert body["results"][1]["error"]["code"] == 3 and body["createdCount"] == 1 and body["failedCount"] == 2
    # an entry's error names its fields as REST spells them, like a refusal of the whole call
    bad = body["results"][2]["error"]["details"][1]
    assert bad["@type"].endswith("google.rpc.BadRequest"), body
    assert [v["field"] for v in bad["fieldViolations"]] == ["product.price.currencyCode"], body
    exported = rest.get("/v1/products:export", headers=shop_a.seller.auth, params={"batchSize": "1000"})
    assert exported.status_code == 200, exported.text
    entries = [e for message in exported.json() for e in message["entries"]]
    assert {e["product"]["sku"]: e.get("onHand") for e in entries}[sku] == "7"
    refused = rest.post("/v1/products:import", headers=shop_a.customer.auth, json={"entries": []})
    assert refused.status_code == 403
