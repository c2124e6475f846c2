"""The edge config: generated from the settings, accepted by the real Envoy,
and the committed envoy/envoy.yaml is never stale."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from services.devmesh.envoy import envoy_binary
from services.edge.descriptors import edge_service
from services.edge.render import ROOT, config, render
from services.runtime.errors import Unauthenticated
from services.runtime.settings import Settings
from services.runtime.tokens import BEARER_PATTERN, TOKEN_LEEWAY_SECONDS, bearer_token


class DefaultSettings(Settings):
    """The settings with their defaults only, whatever the environment says."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def validate(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "envoy.yaml"
    path.write_text(text)
    return subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_committed_envoy_config_equals_a_fresh_render_with_default_settings() -> None:
    committed = (ROOT / "envoy" / "envoy.yaml").read_text()
    assert committed == render(DefaultSettings()), "envoy/envoy.yaml is stale: run `make envoy-config`"


def test_real_envoy_accepts_the_default_config(tmp_path: Path) -> None:
    done = validate(render(DefaultSettings()), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK" in done.stdout


def test_real_envoy_accepts_a_config_for_other_ports_and_hosts(tmp_path: Path) -> None:
    settings = DefaultSettings().model_copy(update={
        "host": "0.0.0.0", "envoy_port": 18080, "envoy_admin_port": 19901, "catalog_port": 60052,
        "service_hosts": {"tenant": "tenant", "catalog": "catalog", "meshinfo": "meshinfo"},
        "descriptor_path": ROOT / "gen" / "descriptor" / "commerce.pb", "edge_jwks_cache_seconds": 5,
    })
    text = render(settings)
    done = validate(text, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"catalog"' in text and "60052" in text and "18080" in text


def _listener(cfg: dict[str, Any]) -> dict[str, Any]:
    manager: dict[str, Any] = cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
    return manager["typed_config"]  # type: ignore[no-any-return]


def _filter(hcm: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f["typed_config"] for f in hcm["http_filters"] if f["name"] == name)


def test_filters_run_header_strip_token_gate_jwt_ratelimit_body_check_transcoder_router() -> None:
    hcm = _listener(config(DefaultSettings()))
    names = [f["name"] for f in hcm["http_filters"]]
    assert names == ["commerce.strip_identity_headers", "commerce.token_gate", "envoy.filters.http.jwt_authn",
                     "commerce.ratelimit", "commerce.body_check", "envoy.filters.http.grpc_json_transcoder",
                     "commerce.rest_grpc_headers", "envoy.filters.http.router"]
    assert hcm["codec_type"] == "AUTO"
    transcoder = _filter(hcm, "envoy.filters.http.grpc_json_transcoder")
    assert transcoder["services"] == ["commerce.tenant.v1.TenantService", "commerce.catalog.v1.CatalogService",
                                      "commerce.cart.v1.CartService", "commerce.order.v1.OrderService",
                                      "commerce.payment.v1.PaymentService"]
    assert transcoder["convert_grpc_status"] is True


def test_a_present_token_must_be_valid_and_a_missing_one_is_left_to_the_service() -> None:
    jwt = _filter(_listener(config(DefaultSettings())), "envoy.filters.http.jwt_authn")
    provider = jwt["providers"]["commerce"]
    assert provider["issuer"] == "commerce-mesh" and provider["forward"] is True
    assert provider["remote_jwks"]["http_uri"]["uri"] == "http://127.0.0.1:8080/.well-known/jwks.json"
    assert jwt["rules"][0]["requires"] == {"requires_any": {"requirements": [
        {"provider_name": "commerce"}, {"allow_missing": {}}]}}
    # The same clock skew as the services', and a token without exp is no token.
    assert provider["clock_skew_seconds"] == TOKEN_LEEWAY_SECONDS and provider["require_expiration"] is True


@pytest.mark.parametrize(("value", "accepted"), [
    ("Bearer a1.b-2.c_3", True), ("bearer a.b.c", True), ("BEARER   a.b.c", True), ("BeArEr a.b.c", True),
    ("Bearer a.b.c junk", False), ("Bearer a.b.", False), ("Bearer a.b", False), ("Bearer\ta.b.c", False),
    ("Basic dXNlcjpwYXNz", False), ("Bearer a.b.c,Bearer a.b.c", False), ("a.b.c", False), ("Bearer", False),
    ("Bearer a+b.c.d", False), ("Bearer a.b.c=", False),
])
def test_the_edge_gate_and_the_services_read_authorization_alike(value: str, accepted: bool) -> None:
    # The gate refuses what BEARER_PATTERN does not match in full (Envoy: RE2, whole value); the services
    # use the very pattern (Python re). Two authorization headers reach the gate joined by a comma.
    gate = _filter(_listener(config(DefaultSettings())), "commerce.token_gate")
    rule = gate["rules"]["policies"]["malformed-authorization"]["permissions"][0]["and_rules"]["rules"][1]
    assert rule["not_rule"]["header"]["string_match"]["safe_regex"]["regex"] == BEARER_PATTERN
    try:
        bearer_token(value)
        service_accepts = True
    except Unauthenticated as refused:
        assert refused.reason == "MALFORMED_TOKEN"
        service_accepts = False
    assert service_accepts is accepted


def test_internal_services_are_not_routed_by_the_edge() -> None:
    text = render(DefaultSettings())
    assert "InventoryService" not in text
    assert "ProvisioningService" not in text
    assert "PaymentProcessingService" not in text


def test_watch_order_streams_without_a_route_timeout_in_the_default_config() -> None:
    routes = _listener(config(DefaultSettings()))["route_config"]["virtual_hosts"][0]["routes"]
    watch = next(r for r in routes if r["match"].get("path") == "/commerce.order.v1.OrderService/WatchOrder")
    assert watch["route"]["cluster"] == "order-streams" and watch["route"]["timeout"] == "0s"


def test_every_service_cluster_is_health_checked_by_its_grpc_service_name() -> None:
    clusters = {c["name"]: c for c in config(DefaultSettings())["static_resources"]["clusters"]}
    assert clusters["catalog"]["health_checks"][0]["grpc_health_check"] == {
        "service_name": "commerce.catalog.v1.CatalogService"}
    assert clusters["tenant"]["health_checks"][0]["grpc_health_check"] == {
        "service_name": "commerce.tenant.v1.TenantService"}
    h2 = clusters["catalog"]["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]["http2_protocol_options"]
    assert h2["max_concurrent_streams"] == 100


def test_server_streaming_methods_get_no_route_timeout_and_unary_ones_do() -> None:
    files = descriptor_pb2.FileDescriptorSet()
    file = files.file.add(name="commerce/order/v1/order.proto", package="commerce.order.v1")
    service = file.service.add(name="OrderService")
    for name, streaming in (("GetOrder", False), ("WatchOrder", True)):
        method = service.method.add(name=name, input_type=".x", output_type=".x", server_streaming=streaming)
        method.options.Extensions[annotations_pb2.http].get = f"/v1/{name}"
    found = edge_service(files, "order")
    assert found.grpc_names == ("commerce.order.v1.OrderService",)
    assert found.streaming_paths == ("/commerce.order.v1.OrderService/WatchOrder",)


def test_a_service_without_a_public_grpc_service_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no public gRPC service of 'shipping'"):
        render(DefaultSettings().model_copy(update={"edge_services": ("tenant", "shipping")}))


def test_the_edge_traces_only_when_an_otlp_endpoint_is_set() -> None:
    assert "tracing" not in _listener(config(DefaultSettings()))
    assert all(c["name"] != "otlp_collector" for c in config(DefaultSettings())["static_resources"]["clusters"])


@pytest.mark.parametrize(("otel", "uri", "percent"), [
    ({"otel_exporter_otlp_endpoint": "http://collector:4318"}, "http://collector:4318/v1/traces", 100.0),
    ({"otel_exporter_otlp_traces_endpoint": "https://otlp.example:443/api/traces",
      "otel_traces_sampler": "parentbased_traceidratio", "otel_traces_sampler_arg": "0.25"},
     "https://otlp.example:443/api/traces", 25.0),
])
def test_real_envoy_accepts_its_opentelemetry_tracer(otel: dict[str, str], uri: str, percent: float,
                                                     tmp_path: Path) -> None:
    settings = DefaultSettings().model_copy(update=otel)
    cfg = config(settings)
    tracing = _listener(cfg)["tracing"]
    assert tracing["random_sampling"] == {"value": percent}
    provider = tracing["provider"]["typed_config"]
    assert provider["http_service"]["http_uri"]["uri"] == uri and provider["service_name"] == "edge"
    # The tenant comes from the checked token's claims; nothing else of the request is tagged.
    assert [tag["tag"] for tag in tracing["custom_tags"]] == ["commerce.tenant_id"]
    collector = next(c for c in cfg["static_resources"]["clusters"] if c["name"] == "otlp_collector")
    assert ("transport_socket" in collector) == uri.startswith("https")
    done = validate(render(settings), tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_otlp_endpoint_that_is_not_an_http_url_is_a_clear_error() -> None:
    settings = DefaultSettings().model_copy(update={"otel_exporter_otlp_endpoint": "collector:4317"})
    with pytest.raises(ValueError, match="must be an http"):
        config(settings)
