"""grpc.health.v1 that tells the truth: each served name is SERVING only while
the service's dependencies (its database) answer, probed in the background.

Facets are extra names reporting one part of the process that it can serve without
(e.g. ``revocations``: SERVING while the revocation feed follows JetStream); they do not
change the service's own names.

- The database probe uses a connection of its own (``Database.ping``), never the request
  pool: a saturated pool is load, not an outage, and must not empty every replica at once.
- One failed probe is not an outage: the names turn NOT_SERVING only after
  ``failures_to_not_serving`` failures in a row (one success turns them back).
- ``liveness`` (``LIVENESS``) says nothing about dependencies: it is SERVING while the event
  loop keeps running. A heartbeat task beats every ``HEARTBEAT_SECONDS``; the name answers
  NOT_SERVING when the loop went longer than ``stall_seconds`` without a beat within the last
  ``STALL_MEMORY_SECONDS`` (a loop blocked outright answers nothing at all, which a probe's
  timeout also counts as a failure). Kubernetes' liveness probe asks this name over gRPC.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from grpc_health.v1 import health, health_pb2
from prometheus_client import Gauge

log = structlog.get_logger("commerce.health")
Probe = Callable[[], Awaitable[bool]]
SERVING = Gauge("commerce_health_serving", "1 while this process's gRPC health says SERVING, 0 while NOT_SERVING",
                ["service"])

LIVENESS = "liveness"
HEARTBEAT_SECONDS = 0.25
# How long a stall found by the heartbeat keeps liveness NOT_SERVING, so a probe that comes
# after the loop got going again still hears about it (Kubernetes probes every 10 s).
STALL_MEMORY_SECONDS = 15.0


class Heartbeat:
    """Beats on the event loop; knows how long the loop last went without running it."""

    def __init__(self, stall_seconds: float) -> None:
        self.stall_seconds = stall_seconds
        self.last_beat = time.monotonic()
        self._stalled_at = float("-inf")
        self._task: asyncio.Task[None] | None = None

    def beat(self) -> None:
        now = time.monotonic()
        gap = now - self.last_beat
        if gap > self.stall_seconds:
            self._stalled_at = now
            log.error("event loop was stuck", seconds=round(gap, 3))
        self.last_beat = now

    def alive(self) -> bool:
        now = time.monotonic()
        return now - self.last_beat <= self.stall_seconds and now - self._stalled_at > STALL_MEMORY_SECONDS

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            self.beat()

    def start(self) -> None:
        self.last_beat = time.monotonic()
        self._task = asyncio.create_task(self._run(), name="health-heartbeat")

    def stop(self) -> None:
        if self._task:
            self._task.cancel()


class _Servicer(health.aio.HealthServicer):  # type: ignore[misc]
    """The library's servicer, with ``liveness`` answered from the heartbeat at each call."""

    def __init__(self, heartbeat: Heartbeat) -> None:
        super().__init__()
        self._heartbeat = heartbeat

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        if request.service == LIVENESS:
            return health_pb2.HealthCheckResponse(status=_status(self._heartbeat.alive()))
        return await super().Check(request, context)


class HealthReporter:
    def __init__(self, service_names: Sequence[str], probes: dict[str, Probe], interval: float,
                 facets: dict[str, Probe] | None = None, failures_to_not_serving: int = 3,
                 stall_seconds: float = 5.0) -> None:
        self.heartbeat = Heartbeat(stall_seconds)
        self.servicer = _Servicer(self.heartbeat)
        self._names = ["", *service_names]
        self._probes = probes
        self._facets = facets or {}
        self._facet_states: dict[str, bool] = {}
        self._interval = interval
        self._failures_to_not_serving = max(1, failures_to_not_serving)
        self._failures_in_a_row = 0
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
        self._failures_in_a_row = self._failures_in_a_row + 1 if self.failing else 0
        # The first check decides at once (a process starting without its database is not ready).
        serving = not self.failing or (
            self._last is True and self._failures_in_a_row < self._failures_to_not_serving)
        if serving != self._last:
            log.info("health changed", serving=serving, failing=self.failing)
            self._last = serving
            await self._set(serving)
        elif self.failing:
            log.warning("health probe failed; still serving", failing=self.failing,
                        in_a_row=self._failures_in_a_row, limit=self._failures_to_not_serving)
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
        self.heartbeat.start()
        self._task = asyncio.create_task(self._loop(), name="health-probe")

    async def shutdown(self) -> None:
        if self._task:
            self._task.cancel()
        self.heartbeat.stop()
        await self.servicer.enter_graceful_shutdown()
        for name in self._names[1:]:
            SERVING.labels(name).set(0)


def _status(serving: bool) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
    return health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
