"""meshinfo: one place that answers for the whole mesh behind the edge —
grpc.health.v1 (asking each service) and server reflection (every enabled
commerce service). No token, no database."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.edge.descriptors import edge_services, load_descriptor_set
from services.edge.render import descriptor_file
from services.meshinfo.bodycheck import BodyChecker
from services.meshinfo.health import MeshHealth
from services.meshinfo.httpcheck import CheckServer
from services.meshinfo.openapi import load_documents
from services.meshinfo.reflection import HEALTH, REFLECTION, mesh_pool, reflected_names
from services.runtime import gc_policy
from services.runtime.settings import Settings

log = structlog.get_logger("commerce.meshinfo")


@dataclass
class Running:
    server: grpc.aio.Server
    port: int
    health: MeshHealth
    check_server: asyncio.Server
    check_port: int

    async def stop(self, grace: float) -> None:
        self.check_server.close()
        await self.server.stop(grace)
        await self.health.close()


async def create_server(settings: Settings, address: str, check_port: int | None = None) -> Running:
    """gRPC (health, reflection) on ``address``; the body check over HTTP on
    ``settings.host:check_port`` (default: settings.meshinfo_check_port; 0 = any free port)."""
    files = load_descriptor_set(descriptor_file(settings))
    services = edge_services(files, settings.edge_services)
    owners = {name: settings.address_of(s.owner) for s in services for name in s.grpc_names}
    pool = mesh_pool(files)
    health = MeshHealth(owners, local=[HEALTH, REFLECTION])
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(reflected_names(owners), server, pool=pool)
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    checker = CheckServer(BodyChecker(files, pool, list(owners)), load_documents(descriptor_file(settings)))
    check_server = await checker.start(settings.host, settings.meshinfo_check_port if check_port is None
                                       else check_port)
    await server.start()
    bound = int(check_server.sockets[0].getsockname()[1])
    return Running(server, port, health, check_server, bound)


async def serve(settings: Settings) -> None:
    gc_policy.settle_after_start()
    running = await create_server(settings, f"{settings.host}:{settings.meshinfo_port}")
    log.info("serving", address=f"{settings.host}:{running.port}", body_check_port=running.check_port,
             services=settings.edge_services)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await running.stop(settings.shutdown_grace_seconds)
