"""grpc.health.v1 tells the truth: NOT_SERVING while the catalog's database is
unreachable, SERVING again once it is back."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devmesh.postgres import Postgres
from services.runtime.health import LIVENESS
from services.runtime.settings import Settings
from tests.catalog.harness import start_catalog
from tests.conftest import free_port, server_folder
from tests.tokens import TestKeys

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[Postgres]:
    with server_folder("pg") as folder:  # restarted below: kept out of pytest's temporary root
        server = Postgres(folder, free_port(), fast_unsafe=True, log_dir=tmp_path)
        server.start()
        yield server
        server.stop()


def _stop_fast(server: Postgres) -> None:
    """Fast shutdown: the catalog's open connections must not keep the server up."""
    assert server.process is not None
    server.process.send_signal(signal.SIGINT)
    server.process.wait(15)


@pytest.fixture
async def health(own_postgres: Postgres, keys: TestKeys) -> AsyncIterator[health_pb2_grpc.HealthStub]:
    running, _ = await start_catalog(Settings(database_url=own_postgres.url, database_prefix="cathealth"), keys,
                                     probe_seconds=0.2)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield health_pb2_grpc.HealthStub(channel)
    await running.stop(0)


async def _wait_for(stub: health_pb2_grpc.HealthStub, wanted: int, within: float) -> float:
    started = time.monotonic()
    while True:
        statuses = {service: (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)).status
                    for service in ("", "commerce.catalog.v1.CatalogService")}
        if set(statuses.values()) == {wanted}:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"health stayed {statuses}, wanted {wanted}"
        await asyncio.sleep(0.1)


async def test_health_follows_the_database(own_postgres: Postgres, health: health_pb2_grpc.HealthStub) -> None:
    await _wait_for(health, SERVING, within=5)

    await asyncio.to_thread(_stop_fast, own_postgres)
    await _wait_for(health, NOT_SERVING, within=5)
    # Liveness is about the process, not its database: an outage must not restart every pod.
    liveness = await health.Check(health_pb2.HealthCheckRequest(service=LIVENESS), timeout=2)
    assert liveness.status == SERVING

    await asyncio.to_thread(own_postgres.start)
    await _wait_for(health, SERVING, within=10)
