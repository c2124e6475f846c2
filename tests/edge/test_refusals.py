"""The edge's refusals that need a broken world to meet, against a real Envoy in front of a
fake upstream (tests/edge/harness.py): the tenant service (and so the JWKS) and the cart
are down, the catalog answers one product slowly, and the body check is a stub that lets
bodies through but drops the connection for stock requests. Each refusal has the shape of
services/edge/refusals.py: a JSON google.rpc.Status for REST, the matching gRPC status with
the same details for native gRPC. The other rows are met against the session's mesh
(tests/security/test_edge_refusals.py) and the rate limiter's Envoy (test_ratelimit.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import httpx
import pytest
from commerce.cart.v1 import cart_pb2, cart_pb2_grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from services.edge.refusals import by_reason
from services.edge.render import ROOT
from services.runtime.settings import Settings
from tests.conftest import free_port
from tests.edge.harness import SLOW_PRODUCT, running_edge
from tests.errors import reason_of, rest_error
from tests.tokens import TestKeys

ROUTE_TIMEOUT = 1.0


class BodyCheckStub(BaseHTTPRequestHandler):
    """meshinfo's body check, reduced to: every body passes, but a stock request finds it gone."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        if "/stock" in self.path:
            self.close_connection = True  # no answer at all: ext_authz fails
            return
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@dataclass
class World:
    port: int
    keys: TestKeys

    def rest(self) -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder: Path = tmp_path_factory.mktemp("refusals-edge")
    upstream, down = free_port(), free_port()  # nothing ever listens on `down`
    stub = ThreadingHTTPServer(("127.0.0.1", 0), BodyCheckStub)
    settings = Settings().model_copy(update={
        "edge_services": ("tenant", "catalog", "cart"), "descriptor_path": ROOT / "gen" / "descriptor" / "commerce.pb",
        "tenant_port": down, "cart_port": down, "catalog_port": upstream, "meshinfo_port": upstream,
        "meshinfo_check_port": stub.server_address[1], "envoy_port": free_port(), "envoy_admin_port": free_port(),
        "edge_route_timeout_seconds": ROUTE_TIMEOUT, "edge_jwks_cache_seconds": 1,
    })
    keys = TestKeys()
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        for _ in running_edge(folder, settings, keys, upstream, ["catalog"], jwks=False):
            yield World(settings.envoy_port, keys)
    finally:
        stub.shutdown()


def _get_product(product_id: str, token: str | None = None) -> Callable[[grpc.Channel], object]:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    # No client deadline for the slow product: with one, Envoy passes it on and the upstream's own
    # DEADLINE_EXCEEDED (without details) races the edge's (the slow answer comes after 3 s anyway).
    timeout = None if product_id == SLOW_PRODUCT else 10
    return lambda channel: catalog_pb2_grpc.CatalogServiceStub(channel).GetProduct(
        catalog_pb2.GetProductRequest(product_id=product_id), metadata=metadata, timeout=timeout)


def _get_cart(channel: grpc.Channel) -> object:
    return cart_pb2_grpc.CartServiceStub(channel).GetCart(cart_pb2.GetCartRequest(), timeout=10)


def _token(world: World) -> str:
    return world.keys.mint(tenant="shop", roles=["customer"])


# reason -> (the REST request: method, path, body, with a token; the same over native gRPC, or None)
Rest = tuple[str, str, bytes | None, bool]
Call = Callable[[World], Callable[[grpc.Channel], object]]
CASES: dict[str, tuple[Rest, Call | None]] = {
    "KEYS_UNAVAILABLE": (("GET", "/v1/products/prd_1", None, True), lambda w: _get_product("prd_1", _token(w))),
    "SERVICE_UNAVAILABLE": (("GET", "/v1/cart", None, False), lambda w: _get_cart),
    "UPSTREAM_TIMEOUT": (("GET", f"/v1/products/{SLOW_PRODUCT}", None, False), lambda w: _get_product(SLOW_PRODUCT)),
    "BODY_CHECK_UNAVAILABLE": (("PUT", "/v1/products/prd_1/stock", b'{"onHand": "1"}', False), None),
    # The transcoder's own refusal of a body value (meshinfo's strict check would refuse it first).
    "INVALID_FIELD_VALUE": (("POST", "/v1/products", b'{"product": {"price": {"amountMinor": 1.5}}}', False), None),
}


@pytest.mark.parametrize("reason", list(CASES))
def test_a_refusal_of_the_edge_is_a_json_status_with_its_reason(world: World, reason: str) -> None:
    (method, path, body, with_token), _ = CASES[reason]
    headers = {"content-type": "application/json"}
    if with_token:
        headers["authorization"] = f"Bearer {_token(world)}"
    with world.rest() as client:
        reply = client.request(method, path, content=body, headers=headers)
    row = by_reason(reason)
    assert rest_error(reply) == (row.http_status, row.code_number, reason), reply.text


@pytest.mark.parametrize("reason", [r for r, (_, call) in CASES.items() if call is not None])
def test_the_same_refusal_over_native_grpc_has_its_code_and_the_same_details(world: World, reason: str) -> None:
    call = CASES[reason][1]
    assert call is not None
    # Envoy passes the deadline on, so a service past it may answer DEADLINE_EXCEEDED itself in the
    # same millisecond (then without details): the edge's own answer must be met within a few tries.
    tries = 5 if reason == "UPSTREAM_TIMEOUT" else 1
    reasons = []
    with grpc.insecure_channel(f"127.0.0.1:{world.port}") as channel:
        for _ in range(tries):
            with pytest.raises(grpc.RpcError) as refused:
                call(world)(channel)
            assert refused.value.code().name == by_reason(reason).grpc_code_name
            reasons.append(reason_of(refused.value))
            if reasons[-1] == reason:
                break
    assert reasons[-1] == reason, reasons
    assert set(reasons) <= {reason, ""}, reasons
