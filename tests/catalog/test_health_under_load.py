"""Health that survives load: a request pool held entirely by load leaves the catalog SERVING
(the probe has a connection of its own); one failed probe does not turn a replica NOT_SERVING;
`liveness` follows the event loop, not the database: a loop stuck past the stall limit answers
NOT_SERVING (or nothing at all while it is stuck)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devmesh.postgres import Postgres
from services.runtime import health
from services.runtime.db import Database
from services.runtime.health import LIVENESS, HealthReporter
from services.runtime.server import Running
from services.runtime.settings import Settings
from tests.catalog.harness import start_catalog
from tests.tokens import TestKeys

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE = "commerce.catalog.v1.CatalogService"
STALL = 1.0


@pytest.fixture
async def catalog(postgres: Postgres, keys: TestKeys) -> AsyncIterator[tuple[Running, Database]]:
    # a short probe timeout: were the probe to use the saturated pool, three failures would come
    # within the test's window (with the default 2 s, after it)
    settings = Settings(database_url=postgres.url, database_prefix="cathealthload", db_pool_size=2,
                        health_probe_timeout_seconds=0.2)
    running, db = await start_catalog(settings, keys, probe_seconds=0.1, stall_seconds=STALL)
    yield running, db
    await running.stop(0)


def _check_sync(port: int, service: str, timeout: float = 2.0) -> int:
    """From another thread, so it gets its answer (or not) whatever the server's loop does."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                          timeout=timeout)
        return int(reply.status)


async def test_a_saturated_request_pool_leaves_health_serving(catalog: tuple[Running, Database]) -> None:
    running, db = catalog
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        pool = await db.pool()
        async with AsyncExitStack() as held:
            for _ in range(db.pool_size):
                await held.enter_async_context(pool.acquire())
            # The pool is really exhausted: a request would wait.
            with pytest.raises(TimeoutError):
                async with pool.acquire(timeout=0.3):
                    pass
            # Many probe rounds (every 0.1 s, 3 failures would flip it) while the pool stays held.
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                for name in ("", SERVICE, LIVENESS):
                    reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
                    assert reply.status == SERVING, name
                await asyncio.sleep(0.1)


async def test_one_failed_probe_is_not_an_outage_three_in_a_row_are() -> None:
    answers: list[bool] = [True, False, True, False, False, False, True]
    reporter = HealthReporter(["svc"], {"database": lambda: _answer(answers)}, interval=1, failures_to_not_serving=3)
    seen = [await reporter.check_once() for _ in range(7)]
    assert seen == [True, True, True, True, True, False, True]


async def _answer(answers: list[bool]) -> bool:
    return answers.pop(0)


async def test_the_first_check_decides_at_once() -> None:
    reporter = HealthReporter(["svc"], {"database": lambda: _answer([False])}, interval=1, failures_to_not_serving=3)
    assert await reporter.check_once() is False


async def test_liveness_fails_when_the_event_loop_is_stuck(catalog: tuple[Running, Database],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "STALL_MEMORY_SECONDS", 1.5)
    running, _ = catalog
    assert await asyncio.to_thread(_check_sync, running.port, LIVENESS) == SERVING

    # The loop is blocked by synchronous work for longer than the stall limit.
    loop = asyncio.get_running_loop()
    probe_while_stuck = loop.run_in_executor(None, _check_while_stuck, running.port)
    time.sleep(STALL * 2)  # noqa: ASYNC251 - blocking the loop is the point
    code = await probe_while_stuck
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED  # a stuck loop answers nothing
    # Once it runs again, liveness tells about the stall for a while, then recovers.
    assert await asyncio.to_thread(_check_sync, running.port, LIVENESS) == NOT_SERVING
    # Readiness is about the database, which is fine.
    assert await asyncio.to_thread(_check_sync, running.port, SERVICE) == SERVING
    await asyncio.sleep(health.STALL_MEMORY_SECONDS + 0.3)
    assert await asyncio.to_thread(_check_sync, running.port, LIVENESS) == SERVING


def _check_while_stuck(port: int) -> grpc.StatusCode:
    time.sleep(STALL / 2)  # well inside the block
    try:
        _check_sync(port, LIVENESS, timeout=0.5)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK
