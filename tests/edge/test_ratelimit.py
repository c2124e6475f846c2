"""Rate limits at the edge, through a real Envoy rendered with tight limits, in front
of a small in-process gRPC upstream serving the tenant service's JWKS (so Envoy
verifies real RS256 tokens) and CatalogService.GetProduct.

Limits here: a user 3 calls of burst at 1/s, a tenant 6 at 2/s (the tenant "roomy"
1000/s), an address without a token 3 at 1/s. Buckets refill continuously, so each
test counts the calls that passed before the first refusal and allows what refilled
meanwhile. Each test uses users, tenants and client addresses of its own."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from services.devmesh.envoy import Envoy
from services.edge.render import ROOT, config
from services.runtime.settings import Settings
from tests.conftest import free_port
from tests.edge.harness import running_edge
from tests.errors import reason_of
from tests.tokens import TestKeys

USER_BURST, USER_RATE = 3, 1
TENANT_BURST, TENANT_RATE = 6, 2
ANON_BURST, ANON_RATE = 3, 1
ROOMY = "roomy"  # a tenant with an override: its users meet their own limit first


@dataclass
class Edge:
    keys: TestKeys
    envoy: Envoy
    port: int

    def rest(self, client_ip: str = "127.0.0.1") -> httpx.Client:
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10,
                            transport=httpx.HTTPTransport(local_address=client_ip))

    def token(self, tenant: str, sub: str | None = None) -> str:
        return self.keys.mint(tenant=tenant, roles=["customer"], sub=sub or f"user-{uuid.uuid4().hex[:8]}")


def limited_settings(**ports: int) -> Settings:
    return Settings().model_copy(update={
        **ports, "edge_services": ("tenant", "catalog"), "descriptor_path": ROOT / "gen" / "descriptor" / "commerce.pb",
        "edge_jwks_cache_seconds": 1,
        "ratelimit_user_per_second": USER_RATE, "ratelimit_user_burst": USER_BURST,
        "ratelimit_tenant_per_second": TENANT_RATE, "ratelimit_tenant_burst": TENANT_BURST,
        "ratelimit_anonymous_per_second": ANON_RATE, "ratelimit_anonymous_burst": ANON_BURST,
        "ratelimit_tenant_overrides": {ROOMY: 1000},
    })


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    folder = tmp_path_factory.mktemp("ratelimit-edge")
    upstream = free_port()
    settings = limited_settings(tenant_port=upstream, catalog_port=upstream, meshinfo_port=upstream,
                                envoy_port=free_port(), envoy_admin_port=free_port())
    keys = TestKeys()
    for envoy in running_edge(folder, settings, keys, upstream, ["tenant", "catalog"]):
        yield Edge(keys, envoy, settings.envoy_port)


def get_product(client: httpx.Client, token: str | None = None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return client.get("/v1/products/prd_1", headers=headers)


def passes_until_limited(call: Callable[[], httpx.Response], burst: int, rate: int) -> tuple[int, httpx.Response]:
    """Calls until the first 429; checks that no more passed than the burst plus what refilled meanwhile."""
    started = time.monotonic()
    passed = 0
    for _ in range(burst + 20):
        reply = call()
        if reply.status_code == 429:
            refilled = math.ceil((time.monotonic() - started) * rate)
            assert burst <= passed <= burst + refilled, (passed, burst, refilled)
            return passed, reply
        assert reply.status_code == 200, reply.text
        passed += 1
    raise AssertionError(f"never limited after {passed} calls (burst {burst})")


def test_a_user_is_limited_while_another_user_of_the_same_tenant_still_passes(edge: Edge) -> None:
    user_a, user_b = edge.token(ROOMY), edge.token(ROOMY)
    with edge.rest() as client:
        _, refused = passes_until_limited(lambda: get_product(client, user_a), USER_BURST, USER_RATE)
        assert refused.headers["x-ratelimit-limit"] == str(USER_BURST)
        other = get_product(client, user_b)
        assert other.status_code == 200, other.text
        assert other.json()["product"]["productId"] == "prd_1"
        assert other.headers["x-ratelimit-remaining"] == str(USER_BURST - 1)
        assert get_product(client, user_a).status_code == 429


def test_a_tenants_limit_holds_across_its_users(edge: Edge) -> None:
    tenant = f"shop-{uuid.uuid4().hex[:8]}"
    users = [edge.token(tenant) for _ in range(4)]
    calls_by_user = dict.fromkeys(users, 0)
    turn = iter(range(100))

    def next_call(client: httpx.Client) -> httpx.Response:
        user = users[next(turn) % len(users)]
        calls_by_user[user] += 1
        reply = get_product(client, user)
        if reply.status_code == 429:
            # Refused although this user made fewer calls than its own burst: the tenant's bucket.
            assert calls_by_user[user] <= USER_BURST - 1
        return reply

    with edge.rest() as client:
        _, refused = passes_until_limited(lambda: next_call(client), TENANT_BURST, TENANT_RATE)
        assert refused.headers["x-ratelimit-limit"] == str(TENANT_BURST)
        assert max(calls_by_user.values()) < USER_BURST
        # Another tenant's user is not affected.
        assert get_product(client, edge.token(f"shop-{uuid.uuid4().hex[:8]}")).status_code == 200


def test_calls_without_a_token_are_limited_per_client_address(edge: Edge) -> None:
    with edge.rest("127.0.0.2") as first, edge.rest("127.0.0.3") as second:
        _, refused = passes_until_limited(lambda: get_product(first), ANON_BURST, ANON_RATE)
        assert refused.headers["x-ratelimit-limit"] == str(ANON_BURST)
        assert get_product(second).status_code == 200
        # A token is counted against its user, not the address.
        assert get_product(first, edge.token(ROOMY)).status_code == 200
        assert get_product(first).status_code == 429


def test_a_limited_rest_call_gets_429_with_a_json_status_and_rate_limit_headers(edge: Edge) -> None:
    token = edge.token(ROOMY)
    with edge.rest() as client:
        first = get_product(client, token)
        assert first.status_code == 200
        assert (first.headers["x-ratelimit-limit"], first.headers["x-ratelimit-remaining"]) == (
            str(USER_BURST), str(USER_BURST - 1))
        _, refused = passes_until_limited(lambda: get_product(client, token), USER_BURST - 1, USER_RATE)
    assert refused.headers["content-type"] == "application/json"
    body = refused.json()
    assert body["code"] == 8 and "rate limit" in body["message"]
    assert body["details"] == [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMITED",
                                "domain": "commerce-mesh"}]
    assert refused.headers["x-ratelimit-limit"] == str(USER_BURST)
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert int(refused.headers["x-ratelimit-reset"]) >= 0
    assert refused.headers["retry-after"] == "1"


def test_a_limited_grpc_call_gets_resource_exhausted(edge: Edge) -> None:
    metadata = (("authorization", f"Bearer {edge.token(ROOMY)}"),)
    with grpc.insecure_channel(f"127.0.0.1:{edge.port}") as channel:
        stub = catalog_pb2_grpc.CatalogServiceStub(channel)
        started = time.monotonic()
        passed, refused = 0, None
        while refused is None and passed < USER_BURST + 20:
            try:
                stub.GetProduct(catalog_pb2.GetProductRequest(product_id="prd_1"), metadata=metadata, timeout=10)
                passed += 1
            except grpc.RpcError as error:
                refused = error
    assert isinstance(refused, grpc.Call), "never limited"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused
    assert USER_BURST <= passed <= USER_BURST + math.ceil((time.monotonic() - started) * USER_RATE)
    trailers = dict(refused.trailing_metadata() or ())
    assert trailers.get("retry-after") == "1" and trailers.get("x-ratelimit-remaining") == "0"
    assert reason_of(refused) == "RATE_LIMITED"  # the same google.rpc.Status as REST's, in grpc-status-details-bin


def test_every_spelling_of_the_bearer_scheme_spends_the_users_own_bucket(edge: Edge) -> None:
    # Whatever spelling a service accepts (RFC 6750: the scheme in any case), the edge counts the
    # call against the token's user, never against the address as if it were anonymous.
    token = edge.token(ROOMY)
    spellings = iter(["Bearer ", "bearer ", "BEARER  ", "bEaReR "] * 10)
    with edge.rest("127.0.0.6") as client:
        _, refused = passes_until_limited(
            lambda: client.get("/v1/products/prd_1", headers={"authorization": f"{next(spellings)}{token}"}),
            USER_BURST, USER_RATE)
        assert refused.headers["x-ratelimit-limit"] == str(USER_BURST)
        # This address's anonymous bucket was not touched meanwhile.
        assert get_product(client).headers["x-ratelimit-remaining"] == str(ANON_BURST - 1)
        # A spelling no service accepts is refused at the edge, not let through as anonymous.
        other = client.get("/v1/products/prd_1", headers={"authorization": f"Token {token}"})
        assert other.status_code == 401 and other.json()["details"][0]["reason"] == "MALFORMED_TOKEN"


def test_a_spoofed_identity_header_picks_no_one_elses_bucket(edge: Edge) -> None:
    victim = f"user-{uuid.uuid4().hex[:8]}"
    victim_token = edge.token(ROOMY, sub=victim)
    with edge.rest() as client:
        passes_until_limited(lambda: get_product(client, victim_token), USER_BURST, USER_RATE)
        # Another user claiming to be the victim still spends only its own, full bucket.
        other = get_product(client, edge.token(ROOMY), **{"x-commerce-sub": victim, "x-commerce-tenant": ROOMY})
        assert other.status_code == 200 and other.headers["x-ratelimit-remaining"] == str(USER_BURST - 1)
        # The limited user cannot escape to a fresh bucket by naming someone else.
        escape = get_product(client, victim_token, **{"x-commerce-sub": f"user-{uuid.uuid4().hex[:8]}"})
        assert escape.status_code == 429
    # Without a token, a made-up user header changes nothing: the address is limited.
    with edge.rest("127.0.0.4") as anonymous:
        passes_until_limited(lambda: get_product(anonymous, **{"x-commerce-sub": uuid.uuid4().hex,
                                                               "x-commerce-tenant": ROOMY}), ANON_BURST, ANON_RATE)


def test_envoys_own_jwks_fetch_is_not_limited_while_its_address_is(edge: Edge) -> None:
    fetched, failed = edge.envoy.counter("jwks_fetch_success"), edge.envoy.counter("jwks_fetch_failed")
    with edge.rest("127.0.0.1") as local, edge.rest("127.0.0.5") as remote:
        passes_until_limited(lambda: get_product(local), ANON_BURST, ANON_RATE)
        # Keep 127.0.0.1 limited for a few JWKS refreshes (cached 1 s in this config).
        window, passed, refused = 3, 0, 0
        deadline = time.monotonic() + window
        while time.monotonic() < deadline:
            status = get_product(local).status_code
            passed, refused = passed + (status == 200), refused + (status == 429)
            assert local.get("/.well-known/jwks.json").status_code == 200
            time.sleep(0.05)
        # Only what refilled passed meanwhile.
        assert passed <= window * ANON_RATE + 1 and refused > 10
        # The exemption is for the local fetch only: another address is limited on that path too.
        replies = [remote.get("/.well-known/jwks.json").status_code for _ in range(ANON_BURST + 5)]
        assert 429 in replies
    assert edge.envoy.counter("jwks_fetch_success") > fetched
    assert edge.envoy.counter("jwks_fetch_failed") == failed
    # Tokens still verify.
    with edge.rest() as client:
        assert get_product(client, edge.token(ROOMY)).status_code == 200


def _local_ratelimit(cfg: dict[str, Any]) -> dict[str, Any]:
    hcm = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    wrapped = next(f for f in hcm["http_filters"] if f["name"] == "commerce.ratelimit")
    return wrapped["typed_config"]["extension_config"]["typed_config"]  # type: ignore[no-any-return]


def test_limits_and_tenant_overrides_come_from_the_settings(tmp_path: Path) -> None:
    settings = limited_settings().model_copy(update={"ratelimit_tenant_overrides": {"big": 500, "tiny": 1},
                                                     "ratelimit_max_buckets": 12345})
    limiter = _local_ratelimit(config(settings))
    buckets = {tuple((e["key"], e.get("value")) for e in d["entries"]): d["token_bucket"]
               for d in limiter["descriptors"]}
    assert buckets[(("user", None),)] == {"max_tokens": 3, "tokens_per_fill": 1, "fill_interval": "1s"}
    assert buckets[(("tenant", None),)] == {"max_tokens": 6, "tokens_per_fill": 2, "fill_interval": "1s"}
    assert buckets[(("tenant", "big"),)] == {"max_tokens": 1500, "tokens_per_fill": 500, "fill_interval": "1s"}
    assert buckets[(("tenant", "tiny"),)]["tokens_per_fill"] == 1
    assert buckets[(("anonymous", "true"), ("masked_remote_address", None))]["max_tokens"] == 3
    assert limiter["max_dynamic_descriptors"] == 12345
    assert limiter["rate_limited_as_resource_exhausted"] is True


def test_default_limits_leave_room_for_active_users_and_the_benchmark() -> None:
    limiter = _local_ratelimit(config(Settings.model_construct()))
    assert limiter["max_dynamic_descriptors"] >= 10000
    user = next(d for d in limiter["descriptors"] if d["entries"] == [{"key": "user"}])
    assert user["token_bucket"]["tokens_per_fill"] >= 5000


def test_a_tenant_override_below_one_request_per_second_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"ratelimit_tenant_overrides.*\['idle'\]"):
        config(limited_settings().model_copy(update={"ratelimit_tenant_overrides": {"idle": 0}}))
