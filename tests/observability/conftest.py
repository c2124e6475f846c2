"""A mesh of its own for what operators see: tracing on (to an OTLP/HTTP receiver in the
test, on a free port) and metrics served (the services', and Envoy's on its metrics listener),
with its own NATS; and a shop on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.devmesh.mesh import Mesh, free_port
from services.devmesh.postgres import Postgres
from services.devmesh.traces import OtlpReceiver
from tests.e2e.harness import Shop, create_admin, open_shop, run_mesh


@pytest.fixture(scope="session")
def receiver() -> Iterator[OtlpReceiver]:
    found = OtlpReceiver(0).start()
    yield found
    found.stop()


@pytest.fixture(scope="session")
def traced_mesh(workdir: Path, postgres: Postgres, receiver: OtlpReceiver) -> Iterator[Mesh]:
    # Spans leave each process within 100 ms (the SDK's default is 5 s), so the test waits little.
    saved = os.environ.get("OTEL_BSP_SCHEDULE_DELAY")
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    try:
        yield from run_mesh(workdir / "traced-mesh", postgres, "obs", metrics=True, log_level="INFO",
                            log_format="json", otel_exporter_otlp_endpoint=receiver.endpoint,
                            envoy_metrics_port=free_port())
    finally:
        if saved is None:
            os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
        else:
            os.environ["OTEL_BSP_SCHEDULE_DELAY"] = saved


@dataclass(frozen=True)
class Traced:
    """The traced mesh, a client of its edge, and a shop (with a seller and a customer) on it."""

    mesh: Mesh
    rest: httpx.Client
    shop: Shop


@pytest.fixture(scope="session")
def traced(traced_mesh: Mesh) -> Iterator[Traced]:
    with httpx.Client(base_url=traced_mesh.edge_url, timeout=20) as rest:
        admin = create_admin(traced_mesh, rest, "admin@obs.test")
        yield Traced(traced_mesh, rest, open_shop(rest, admin, "obs-shop"))
