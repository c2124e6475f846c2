"""Server bootstrap shared by every service: grpc.aio on uvloop, the service
interceptor, truthful health, reflection, metrics and graceful shutdown.

``create_server`` is kept apart from ``run_service`` so tests can bind port 0
in-process; ``run_service`` is what each ``python -m services.<name>`` runs.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
import structlog
import uvloop
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from services.runtime import gc_policy, logs, telemetry
from services.runtime.access import rules_for
from services.runtime.health import HealthReporter, Probe
from services.runtime.interceptors import ServiceInterceptor
from services.runtime.settings import Settings, load_settings
from services.runtime.tokens import TokenVerifier

log = structlog.get_logger("commerce.server")
Hook = Callable[[], Awaitable[None]]
STOP_HOOK_SECONDS = 5.0
REVOCATIONS_FACET = "revocations"
MAX_CONNECTION_AGE_MS = 60_000

# Bounded streams per connection make Envoy and our own channels open more than
# one HTTP/2 connection under load, spreading it across replicas.
SERVER_OPTIONS = [
    ("grpc.max_concurrent_streams", 256),
    ("grpc.so_reuseport", 1),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    # Clients (our balanced channels, services/runtime/channels.py) reconnect at least this
    # often, and so resolve the service's name again and find pods added since. No grace
    # limit: streams open on an old connection (WatchOrder) finish undisturbed.
    ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
]


@dataclass
class App:
    """What a service contributes; the runtime does the rest."""

    name: str
    services: Sequence[ServiceDescriptor]
    register: Callable[[grpc.aio.Server], None]
    verifier: TokenVerifier
    probes: dict[str, Probe] = field(default_factory=dict)
    # Health names of parts the service serves without (health.py); "revocations" is added for
    # a verifier that follows revocations.
    facets: dict[str, Probe] = field(default_factory=dict)
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)


@dataclass
class Running:
    server: grpc.aio.Server
    port: int
    health: HealthReporter
    app: App

    async def stop(self, grace: float) -> None:
        """NOT_SERVING, then calls in flight get ``grace`` to finish (new ones are refused), and
        only then the stop hooks close what those calls use (the relay, the database)."""
        await self.health.shutdown()
        await self.server.stop(grace)
        for hook in [*self.app.on_stop, self.app.verifier.stop]:
            # asyncio.wait, not wait_for: a hook that swallows its cancellation must not hang shutdown.
            task = asyncio.ensure_future(hook())
            done, _ = await asyncio.wait({task}, timeout=STOP_HOOK_SECONDS)
            if not done:
                task.cancel()
                log.warning("stop hook did not finish in time; going on", hook=getattr(hook, "__qualname__", hook))
            elif not task.cancelled() and task.exception() is not None:
                log.error("stop hook failed", error=repr(task.exception()))


async def create_server(app: App, address: str, probe_seconds: float = 1.0, *,
                        failures_to_not_serving: int = 3, stall_seconds: float = 5.0) -> Running:
    # Tracing's interceptor (none when it is off) comes first, so the call's span is current in ours.
    server = grpc.aio.server(
        interceptors=[*telemetry.server_interceptors(), ServiceInterceptor(app.verifier, rules_for(app.services))],
        options=SERVER_OPTIONS,
    )
    app.register(server)
    names = [s.full_name for s in app.services]
    facets = dict(app.facets)
    if app.verifier.revocations is not None:
        facets[REVOCATIONS_FACET] = app.verifier.revocations.following_probe
    reporter = HealthReporter(names, app.probes, probe_seconds, facets, failures_to_not_serving, stall_seconds)
    health_pb2_grpc.add_HealthServicer_to_server(reporter.servicer, server)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"cannot listen on {address}")
    await server.start()
    await reporter.check_once()
    reporter.start()
    await app.verifier.start()
    for hook in app.on_start:
        await hook()
    return Running(server, port, reporter, app)


async def _main(name: str, build: Callable[[Settings], Awaitable[App]]) -> None:
    settings = load_settings()
    logs.configure(name, settings.log_level, settings.log_format)
    if telemetry.configure(name, settings):
        log.info("tracing on", endpoint=settings.otlp_traces_url(), sampler=settings.otel_traces_sampler or "default")
    app = await build(settings)
    gc_policy.settle_after_start()
    port = settings.port_of(name)
    if settings.metrics_port_offset:
        start_http_server(port + settings.metrics_port_offset, addr=settings.host)
    running = await create_server(app, f"{settings.host}:{port}", settings.health_probe_seconds,
                                  failures_to_not_serving=settings.health_failures_to_not_serving,
                                  stall_seconds=settings.liveness_stall_seconds)
    log.info("serving", address=f"{settings.host}:{running.port}", services=[s.full_name for s in app.services])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", grace_seconds=settings.shutdown_grace_seconds)
    await running.stop(settings.shutdown_grace_seconds)
    log.info("stopped")
    telemetry.shutdown()
    # Leave now: a background task of a library that ignores cancellation (seen with a NATS
    # client whose server was gone) must not keep the process alive after a graceful stop.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def run_service(name: str, build: Callable[[Settings], Awaitable[App]]) -> None:
    uvloop.run(_main(name, build))
