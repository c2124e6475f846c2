"""Every refusal the edge gives itself, as a client meets it through the session's real mesh
(Envoy in front of every service): REST gets a JSON google.rpc.Status with the ErrorInfo
reason and the HTTP status of services/edge/refusals.py, native gRPC the matching code with
the same details, and a refused write leaves nothing behind. The rows that need another
world (limits, the JWKS or a service down, a slow service) are met in tests/edge
(test_refusals.py, test_ratelimit.py); the last test checks that together they meet every
row of the list, and that the README's table is that list."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from commerce.cart.v1 import cart_pb2, cart_pb2_grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from services.devmesh.mesh import Mesh
from services.edge.refusals import MAX_BODY_BYTES, REFUSALS, by_reason
from tests.e2e.harness import Account, Shop, new_customer, ok, product_json
from tests.errors import reason_of, rest_error
from tests.security.conftest import Tenant
from tests.security.minter import BAD_TOKENS, Minter

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class World:
    mesh: Mesh
    rest: httpx.Client
    minter: Minter
    buyer: Account  # a customer of tenant_a whose cart must stay empty
    shop: Shop


@pytest.fixture(scope="module")
def world(mesh: Mesh, rest: httpx.Client, minter: Minter, tenant_a: Tenant) -> World:
    return World(mesh, rest, minter, new_customer(rest, tenant_a.shop), tenant_a.shop)


def _token_of(reason: str) -> Callable[[Minter], str]:
    return next(spoil for spoil, why in BAD_TOKENS.values() if why == reason)


def _raw(world: World, request: bytes) -> httpx.Response:
    """A request no HTTP client would send, written on the socket; the answer parsed back."""
    host, port = world.mesh.edge_address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return httpx.Response(int(lines[0].split()[1]), headers=headers, content=body)


def _get(path: str, **headers: str) -> Callable[[World], httpx.Response]:
    return lambda w: w.rest.get(path, headers=headers)


def _bearer(reason: str, path: str = "/v1/products") -> Callable[[World], httpx.Response]:
    return lambda w: w.rest.get(path, headers={"authorization": f"Bearer {_token_of(reason)(w.minter)}"})


def _add_to_cart(body: bytes) -> Callable[[World], httpx.Response]:
    return lambda w: w.rest.post("/v1/cart/items", content=body,
                                 headers={**w.buyer.auth, "content-type": "application/json"})


# (what is sent, the reason it gets): Envoy's own refusals, then meshinfo's body check.
REST_CASES: dict[str, tuple[Callable[[World], httpx.Response], str]] = {
    "another scheme": (_get("/v1/products", authorization="Basic dXNlcjpwYXNzd29yZA=="), "MALFORMED_TOKEN"),
    "not a JWT": (_get("/v1/products", authorization="Bearer garbage"), "MALFORMED_TOKEN"),
    "a JWT that cannot be read": (_get("/v1/products", authorization="Bearer a.b.c"), "MALFORMED_TOKEN"),
    "two authorization headers": (lambda w: w.rest.get("/v1/products", headers=[
        ("authorization", w.buyer.auth["authorization"]), ("authorization", w.buyer.auth["authorization"])]),
        "MALFORMED_TOKEN"),
    **{f"token: {reason.lower()}": (_bearer(reason), reason) for reason in (
        "BAD_ALGORITHM", "WRONG_ISSUER", "TOKEN_NOT_YET_VALID", "TOKEN_EXPIRED", "WRONG_AUDIENCE", "UNKNOWN_KEY",
        "BAD_SIGNATURE")},
    "unknown path": (_get("/v1/nothing"), "UNKNOWN_METHOD"),
    "unknown HTTP method of a path": (lambda w: w.rest.delete("/v1/products", headers=w.buyer.auth),
                                      "UNKNOWN_METHOD"),
    "unknown query parameter": (lambda w: w.rest.get("/v1/products?colour=red", headers=w.buyer.auth),
                                "INVALID_PARAMETER"),
    "query parameter of the wrong type": (lambda w: w.rest.get("/v1/products?pageSize=ten", headers=w.buyer.auth),
                                          "INVALID_PARAMETER"),
    "%00 in an id": (lambda w: w.rest.get("/v1/products/prd%00x", headers=w.buyer.auth), "INVALID_PATH"),
    "body over 1 MiB": (_add_to_cart(b'{"productId": "' + b"x" * MAX_BODY_BYTES + b'"}'), "BODY_TOO_LARGE"),
    "headers over 60 KiB": (_get("/v1/products", **{"x-big": "x" * 70_000}), "HEADERS_TOO_LARGE"),
    "malformed HTTP": (lambda w: _raw(w, b"POST /v1/cart/items HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n"),
                       "BAD_REQUEST"),
    "trailing comma": (_add_to_cart(b'{"productId": "p", "quantity": 1,}'), "MALFORMED_JSON"),
    "single quotes": (_add_to_cart(b"{'productId': 'p', 'quantity': 1}"), "MALFORMED_JSON"),
    "unquoted keys": (_add_to_cart(b'{productId: "p", quantity: 1}'), "MALFORMED_JSON"),
    "a comment": (_add_to_cart(b'{"productId": "p", /* one */ "quantity": 1}'), "MALFORMED_JSON"),
    "NaN": (_add_to_cart(b'{"productId": "p", "quantity": NaN}'), "MALFORMED_JSON"),
    "not UTF-8": (_add_to_cart(b'{"productId": "p\xff", "quantity": 1}'), "MALFORMED_JSON"),
    "a key twice": (_add_to_cart(b'{"productId": "a", "productId": "b", "quantity": 1}'), "DUPLICATE_FIELD"),
    "a field by both names": (_add_to_cart(b'{"productId": "a", "product_id": "b", "quantity": 1}'),
                              "DUPLICATE_FIELD"),
    "nested 10,000 deep": (_add_to_cart(b'{"productId": "p", "x": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"),
                           "JSON_TOO_DEEP"),
    "nested 1,000 deep": (_add_to_cart(b"[" * 1_000 + b"]" * 1_000), "JSON_TOO_DEEP"),
    "nested 100 deep": (_add_to_cart(b'{"productId": "p", "x": ' + b"[" * 100 + b"]" * 100 + b"}"),
                        "JSON_TOO_DEEP"),
    "unknown field": (_add_to_cart(b'{"productId": "p", "quantity": 1, "colour": "red"}'), "UNKNOWN_FIELD"),
    "fractional integer": (_add_to_cart(b'{"productId": "p", "quantity": 1.5}'), "INVALID_FIELD_VALUE"),
}


def _grpc_list(authorization: str | Callable[[Minter], str]) -> Callable[[World], object]:
    def call(w: World) -> object:
        value = authorization if isinstance(authorization, str) else f"Bearer {authorization(w.minter)}"
        with grpc.insecure_channel(w.mesh.edge_address) as channel:
            return catalog_pb2_grpc.CatalogServiceStub(channel).ListProducts(
                catalog_pb2.ListProductsRequest(), metadata=(("authorization", value),), timeout=10)
    return call


def _grpc_path(path: str) -> Callable[[World], object]:
    def call(w: World) -> object:
        with grpc.insecure_channel(w.mesh.edge_address) as channel:
            return channel.unary_unary(path)(b"", metadata=w.buyer.metadata, timeout=10)
    return call


GRPC_CASES: dict[str, tuple[Callable[[World], object], str]] = {
    "another scheme": (_grpc_list("Basic dXNlcjpwYXNzd29yZA=="), "MALFORMED_TOKEN"),
    "not a JWT": (_grpc_list("Bearer garbage"), "MALFORMED_TOKEN"),
    **{f"token: {reason.lower()}": (_grpc_list(_token_of(reason)), reason) for reason in (
        "BAD_ALGORITHM", "WRONG_ISSUER", "TOKEN_NOT_YET_VALID", "TOKEN_EXPIRED", "WRONG_AUDIENCE", "UNKNOWN_KEY",
        "BAD_SIGNATURE")},
    "a service the edge does not route": (_grpc_path("/commerce.nothing.v1.NothingService/Do"), "UNKNOWN_METHOD"),
    # Routed to the catalog, which answers it the same way (services/runtime/interceptors.py).
    "a method a routed service does not have": (_grpc_path("/commerce.catalog.v1.CatalogService/Nope"),
                                                 "UNKNOWN_METHOD"),
}


def _cart_lines(w: World) -> int:
    return len(ok(w.rest.get("/v1/cart", headers=w.buyer.auth))["cart"]["lines"])


@pytest.mark.parametrize("case", list(REST_CASES))
def test_an_edge_refusal_over_rest_is_a_json_status_with_its_reason_and_http_status(world: World,
                                                                                    case: str) -> None:
    send, reason = REST_CASES[case]
    reply = send(world)
    row = by_reason(reason)
    assert rest_error(reply) == (row.http_status, row.code_number, reason), reply.text
    assert _cart_lines(world) == 0  # nothing written, whatever was sent


@pytest.mark.parametrize("case", list(GRPC_CASES))
def test_an_edge_refusal_over_native_grpc_has_the_matching_code_and_the_same_details(world: World,
                                                                                     case: str) -> None:
    call, reason = GRPC_CASES[case]
    with pytest.raises(grpc.RpcError) as refused:
        call(world)
    assert refused.value.code().name == by_reason(reason).grpc_code_name
    assert reason_of(refused.value) == reason  # grpcio-status checks code and message match the details


def test_a_refused_token_writes_nothing(world: World) -> None:
    for reason in ("WRONG_AUDIENCE", "BAD_SIGNATURE", "TOKEN_EXPIRED"):
        sku = f"REFUSED-{uuid.uuid4().hex[:8]}"
        token = _token_of(reason)(world.minter)  # a seller's token, spoiled
        reply = world.rest.post("/v1/products", json={"product": product_json(sku)},
                                headers={"authorization": f"Bearer {token}"})
        assert rest_error(reply)[2] == reason
        listed = ok(world.rest.get("/v1/products", params={"query": sku}, headers=world.shop.seller.auth))
        assert listed["products"] == []


def test_the_bearer_scheme_in_any_case_is_the_users_token_at_the_edge_and_the_services(world: World) -> None:
    # Counted against the user's bucket (its size, not the anonymous one's), and acting as the user.
    token = world.buyer.token
    product = ok(world.rest.post("/v1/products", json={"product": product_json()},
                                 headers=world.shop.seller.auth))["product"]["productId"]
    ok(world.rest.put(f"/v1/products/{product}/stock", json={"onHand": "5"}, headers=world.shop.seller.auth))
    settings = world.mesh.settings
    try:
        for scheme in ("bearer", "BEARER", "Bearer"):
            reply = world.rest.get("/v1/cart", headers={"authorization": f"{scheme} {token}"})
            assert ok(reply)["cart"]["customerId"] == world.buyer.subject
            assert reply.headers["x-ratelimit-limit"] == str(settings.ratelimit_user_burst)
        added = world.rest.post("/v1/cart/items", json={"productId": product, "quantity": "1"},
                                headers={"authorization": f"bearer {token}"})
        assert ok(added)["cart"]["customerId"] == world.buyer.subject
        with grpc.insecure_channel(world.mesh.edge_address) as channel:
            cart = cart_pb2_grpc.CartServiceStub(channel).GetCart(
                cart_pb2.GetCartRequest(), metadata=(("authorization", f"bEaReR {token}"),), timeout=10)
        assert [line.product_id for line in cart.cart.lines] == [product]
    finally:
        ok(world.rest.delete(f"/v1/cart/items/{product}", headers=world.buyer.auth))
    assert (settings.ratelimit_user_burst, settings.ratelimit_anonymous_burst) != (0, 0)
    assert settings.ratelimit_user_burst != settings.ratelimit_anonymous_burst  # else the check above proves nothing


# Met elsewhere, against an Envoy set up for them.
ELSEWHERE = {"RATE_LIMITED": "tests/edge/test_ratelimit.py", "KEYS_UNAVAILABLE": "tests/edge/test_refusals.py",
             "SERVICE_UNAVAILABLE": "tests/edge/test_refusals.py", "UPSTREAM_TIMEOUT": "tests/edge/test_refusals.py",
             "BODY_CHECK_UNAVAILABLE": "tests/edge/test_refusals.py",
             "INVALID_FIELD_VALUE": "tests/edge/test_refusals.py (the transcoder's own refusal)"}


def test_every_refusal_of_the_list_is_met_and_the_readme_shows_the_list() -> None:
    met = {reason for _, reason in REST_CASES.values()} | {reason for _, reason in GRPC_CASES.values()}
    assert {r.reason for r in REFUSALS} <= met | set(ELSEWHERE)
    grpc_met = {reason for _, reason in GRPC_CASES.values()} | {"RATE_LIMITED", "KEYS_UNAVAILABLE",
                                                                 "SERVICE_UNAVAILABLE", "UPSTREAM_TIMEOUT"}
    assert {r.reason for r in REFUSALS if r.grpc} <= grpc_met
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d+) \| (\d+) `([A-Z_]+)` \| (\S+) \|", readme, flags=re.M)
    expected = [(r.reason, str(r.http_status), str(r.code_number), r.code, r.grpc_code_name if r.grpc else "—")
                for r in REFUSALS]
    assert rows == expected, "README's edge refusal table differs from services/edge/refusals.py"
