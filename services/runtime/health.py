"""grpc.health.v1 that tells the truth: each served name is SERVING only while
the service's dependencies (its database) answer, probed in the background.

Facets are extra names reporting one part of the process that it can serve without
(e.g. ``revocations``: SERVING while the revocation feed follows JetStream); they do not
change the service's own names."""

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
    def __init__(self, service_names: Sequence[str], probes: dict[str, Probe], interval: float,
                 facets: dict[str, Probe] | None = None) -> None:
        self.servicer = health.aio.HealthServicer()
        self._names = ["", *service_names]
        self._probes = probes
        self._facets = facets or {}
        self._facet_states: dict[str, bool] = {}
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._last: bool | None = None
        self.failing: list[str] = []

    async def _set(self, serving: bool) -> None:
        for name in self._names:
            await self.servicer.set(name, _status(serving))
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
        for name, probe in self._facets.items():
            ok = await probe()
            if ok != self._facet_states.get(name):
                if name in self._facet_states:
                    log.info("health facet changed", facet=name, serving=ok)
                self._facet_states[name] = ok
                await self.servicer.set(name, _status(ok))
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


def _status(serving: bool) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    return health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
