"""grpc.health.v1 for the whole mesh: Check(service) asks the service that
serves it; "" is SERVING only while every enabled service is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

Status = int  # health_pb2.HealthCheckResponse.ServingStatus
SERVING: Status = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: Status = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: Status = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class MeshHealth(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """``owners`` maps each full gRPC service name to the address serving it;
    ``local`` names are served by this process itself (always SERVING)."""

    def __init__(self, owners: Mapping[str, str], local: Iterable[str], timeout: float = 1.0,
                 watch_interval: float = 1.0) -> None:
        self._owners = dict(owners)
        self._local = set(local)
        self._timeout = timeout
        self._watch_interval = watch_interval
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, address: str) -> health_pb2_grpc.HealthStub:
        if address not in self._channels:
            self._channels[address] = grpc.aio.insecure_channel(address)
        return health_pb2_grpc.HealthStub(self._channels[address])

    async def _ask(self, address: str, service: str) -> Status:
        try:
            reply = await self._stub(address).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=self._timeout)
        except grpc.aio.AioRpcError:
            return NOT_SERVING
        return int(reply.status)

    async def status_of(self, service: str) -> Status | None:
        """The service's status, or None when no enabled service serves that name."""
        if service == "":
            addresses = {self._owners[name]: name for name in sorted(self._owners)}
            answers = await asyncio.gather(*(self._ask(address, "") for address in addresses))
            return SERVING if all(a == SERVING for a in answers) else NOT_SERVING
        if service in self._local:
            return SERVING
        address = self._owners.get(service)
        return None if address is None else await self._ask(address, service)

    async def Check(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext[Any, Any]) -> health_pb2.HealthCheckResponse:
        status = await self.status_of(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest,
                    context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last: Status | None = None
        while True:
            status = await self.status_of(request.service)
            current = SERVICE_UNKNOWN if status is None else status
            if current != last:
                last = current
                yield health_pb2.HealthCheckResponse(status=current)
            await asyncio.sleep(self._watch_interval)

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self._channels.values()))
        self._channels.clear()
