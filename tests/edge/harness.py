"""A real Envoy rendered from the settings (services/edge/render.py) in front of a small
in-process gRPC upstream: the tenant service's JWKS (so Envoy verifies real RS256 tokens)
and CatalogService.GetProduct, each fake implementing only what the edge tests need."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.devmesh.envoy import Envoy
from services.devmesh.probes import wait_for
from services.edge.render import ROOT, render
from services.runtime.settings import Settings
from tests.tokens import TestKeys

CATALOG = "commerce.catalog.v1.CatalogService"
TENANT = "commerce.tenant.v1.TenantService"
SLOW_PRODUCT = "prd_slow"  # GetProduct answers it after SLOW_SECONDS
SLOW_SECONDS = 3.0


class Tenants(tenant_pb2_grpc.TenantServiceServicer):
    def __init__(self, keys: TestKeys) -> None:
        self.jwk = tenant_pb2.Jwk(**{k: keys.jwk[k] for k in ("kty", "kid", "use", "alg", "n", "e")})

    def GetJwks(self, request: tenant_pb2.GetJwksRequest, context: grpc.ServicerContext) -> tenant_pb2.GetJwksResponse:
        return tenant_pb2.GetJwksResponse(keys=[self.jwk])


class Catalog(catalog_pb2_grpc.CatalogServiceServicer):
    def GetProduct(self, request: catalog_pb2.GetProductRequest,
                   context: grpc.ServicerContext) -> catalog_pb2.GetProductResponse:
        if request.product_id == SLOW_PRODUCT:
            time.sleep(SLOW_SECONDS)
        product = catalog_pb2.Product(name=f"products/{request.product_id}", product_id=request.product_id)
        return catalog_pb2.GetProductResponse(product=product)


def upstream_server(keys: TestKeys, port: int, extra: Callable[[grpc.Server], None] | None = None,
                    extra_names: tuple[str, ...] = (), workers: int = 8) -> grpc.Server:
    """TenantService.GetJwks, CatalogService.GetProduct and health (every name SERVING) on ``port``;
    ``extra`` adds servicers whose health names are ``extra_names``."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    # Only GetJwks and GetProduct: every other method answers UNIMPLEMENTED (abstract for the typed stubs).
    tenant_pb2_grpc.add_TenantServiceServicer_to_server(Tenants(keys), server)  # type: ignore[abstract]
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(Catalog(), server)  # type: ignore[abstract]
    if extra is not None:
        extra(server)
    health_servicer = health.HealthServicer()
    for name in ("", TENANT, CATALOG, *extra_names):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server


def start_envoy(folder: Path, settings: Settings) -> Envoy:
    """Envoy for ``settings``, started before any gRPC server of this process (forking while
    one runs can crash the child); ``wait_ready`` once the upstream is up."""
    (folder / "envoy.yaml").write_text(render(settings))
    envoy = Envoy(folder / "envoy.yaml", settings.envoy_admin_port, folder / "envoy.log", cwd=ROOT, concurrency=1)
    envoy.start()
    return envoy


def wait_ready(envoy: Envoy, healthy: list[str], jwks: bool) -> None:
    """Until Envoy is live, the ``healthy`` clusters pass their health checks and (``jwks``) it fetched the JWKS."""

    def alive() -> str | None:
        code = envoy.process.exit_code()
        return None if code is None else f"Envoy exited ({code}): {envoy.process.log_tail()}"

    wait_for("Envoy ready", envoy.live, 30, alive)
    wait_for("upstream healthy", lambda: ", ".join(envoy.unhealthy_clusters(healthy)) or None, 30, alive)
    if jwks:
        wait_for("JWKS fetched", lambda: None if envoy.counter("jwks_fetch_success") else "not yet", 30, alive)


def running_edge(folder: Path, settings: Settings, keys: TestKeys, upstream_port: int, healthy: list[str],
                 jwks: bool = True) -> Iterator[Envoy]:
    """Envoy and the fake upstream, started, yielded, stopped (``yield from`` it in a fixture)."""
    envoy = start_envoy(folder, settings)
    server = upstream_server(keys, upstream_port)
    try:
        wait_ready(envoy, healthy, jwks)
        yield envoy
    finally:
        envoy.stop()
        server.stop(0)
