"""grpc.health.v1 that tells the truth: each served name is SERVING only while
the service's dependencies (its database) answer, probed in the background."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog
from grpc_health.v1 import health, health_pb2
from prometheus_client import Gauge

log = structlog.get_logger("commerce.health")
Probe = Callable[[], Awaitable[bool]]
SERVING = Gauge("commerce_health_serving", "1 while this process's gRPC health says SERVING, 0 while NOT_SERVING",
                ["service"])


class HealthReporter:
    def __init__(self, service_names: Sequence[str], probes: dict[str, Probe], interval: float) -> None:
        self.servicer = health.aio.HealthServicer()
        self._names = ["", *service_names]
        self._probes = probes
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last: bool | None = None
        self.failing: list[str] = []

    async def _set(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in self._names:
            await self.servicer.set(name, status)
            if name:
                SERVING.labels(name).set(int(serving))

    async def check_once(self) -> bool:
        results = await asyncio.gather(*(probe() for probe in self._probes.values()))
        self.failing = [name for name, ok in zip(self._probes, results, strict=True) if not ok]
        serving = not self.failing
        if serving != self._last:
            log.info("health changed", serving=serving, failing=self.failing)
            self._last = serving
            await self._set(serving)
        return serving

    async def _loop(self) -> None:
        while True:
            try:
                await self.check_once()
            except Exception:
                log.exception("health probe failed")
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="health-probe")

    async def shutdown(self) -> None:
        if self._task:
            self._task.cancel()
        await self.servicer.enter_graceful_shutdown()
        for name in self._names[1:]:
            SERVING.labels(name).set(0)
