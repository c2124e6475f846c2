"""One mesh for a benchmark run: PostgreSQL, NATS, every service, the notifications
worker, an SMTP sink, meshinfo and Envoy started the way `make run` starts them, but on
free ports in a temporary folder (never .data/), plus a tenant with a seller. ``stop()``
ends every process it started, the mesh's and the benchmarks' own (``spawn``), and
removes the folder; on failure the logs are first copied to bench/results/logs/.

Unlike the end-to-end tests' mesh, this one keeps `make run`'s PostgreSQL durability
(fsync, synchronous_commit, full_page_writes all on: a commit costs an fsync, as in use),
serves each service's Prometheus metrics (gRPC port + an offset whose ports are free),
and preloads pg_stat_statements; the benchmarks' own queries run as the role
``OBSERVER`` so that they can be told apart from the services'.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import grpc
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc

from services.devmesh.mesh import NOTIFICATIONS, ROOT, Mesh, free_metrics_offset, free_port
from services.devmesh.processes import Process
from services.devmesh.progress import Progress
from services.runtime.db import schema_for
from services.runtime.settings import Settings

RESULTS = ROOT / "bench" / "results"
TENANT = "bench"
ADMIN_EMAIL = "admin@bench.test"
SELLER_EMAIL = "seller@bench.test"
# The role the benchmarks' own queries run as (pg_stat_statements tells them apart by it).
OBSERVER = "bench_observer"
# shared_buffers: the search benchmark's million products are ~1.3 GB of table and indexes; 1 GB
# keeps most of what searches touch in PostgreSQL's own cache, as a server sized for it would
# (make run keeps 128 MB).
# auto_explain logs the plan of any statement slower than SLOW_PLAN_MS (the search benchmark keeps them).
SLOW_PLAN_MS = 50
POSTGRES_OPTIONS = {"shared_preload_libraries": "pg_stat_statements,auto_explain", "pg_stat_statements.max": "10000",
                    "pg_stat_statements.track": "top", "pg_stat_statements.track_utility": "on",
                    "shared_buffers": "1GB", "auto_explain.log_min_duration": f"{SLOW_PLAN_MS}ms",
                    "auto_explain.log_format": "text",
                    "auto_explain.log_parameter_max_length": "200"}
DURABILITY = ("PostgreSQL durable as under `make run` (fsync, synchronous_commit and full_page_writes on; "
              "pg_stat_statements preloaded; shared_buffers 1 GB)")
T = TypeVar("T")


class BenchError(RuntimeError):
    """A benchmark could not run; the message says why and where to look."""


@dataclass(frozen=True)
class Shop:
    tenant_id: str
    seller_token: str

    @property
    def schema(self) -> str:
        return schema_for(self.tenant_id)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.seller_token}"),)


def free_port_settings(base: Settings) -> Settings:
    """``base`` on free ports (as Mesh.on_free_ports), with metrics on: an offset for which every
    service's and worker's gRPC port + offset is free too."""
    names = (*base.edge_services, NOTIFICATIONS, "smtp", "meshinfo", "meshinfo_check", "envoy", "envoy_admin")
    ports: dict[str, Any] = {f"{name}_port": free_port() for name in names}
    served = [ports[f"{name}_port"] for name in (*base.edge_services, NOTIFICATIONS)]
    ports["metrics_port_offset"] = free_metrics_offset(ports, served)
    ports["database_url"] = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    ports["nats_url"] = f"nats://127.0.0.1:{free_port()}"
    return base.model_copy(update=ports)


class Harness:
    def __init__(self, benchmark_steps: int, settings: dict[str, Any] | None = None) -> None:
        """``settings``: what the benchmarks change in the mesh's settings (bench/chaos.py: shorter leases;
        bench/tracing.py: an OTLP endpoint)."""
        self.workdir = Path(tempfile.mkdtemp(prefix="commerce-bench-"))
        # The sandbox's outage switch (a file that never exists unless bench/chaos.py makes it).
        updates = {"log_level": "WARNING", "payment_sandbox_outage_file": self.workdir / "sandbox-outage",
                   **(settings or {})}
        self.mesh = Mesh(self.workdir / "mesh", free_port_settings(Settings().model_copy(update=updates)),
                         fast_unsafe=False)
        if self.mesh.postgres is not None:
            self.mesh.postgres.options = dict(POSTGRES_OPTIONS)
        # the mesh's steps, PostgreSQL statistics, the tenant and its seller, then the benchmarks'
        self.progress = self.mesh.progress = Progress(self.mesh.steps + 2 + benchmark_steps)
        self._spawned: list[Process] = []
        self._shop: Shop | None = None
        self.admin: tuple[tuple[str, str], ...] = ()  # the platform admin's token, as call metadata

    # -- running --------------------------------------------------------------

    def start(self) -> None:
        self.progress.note(DURABILITY)
        self.mesh.start()
        self.step("preparing PostgreSQL statistics (pg_stat_statements, role " + OBSERVER + ")",
                  self._prepare_statistics, lambda _: "ready")
        self._shop = self.step(f"creating tenant {TENANT!r} and its seller", self._open_shop,
                               lambda shop: "ready")

    @property
    def shop(self) -> Shop:
        if self._shop is None:
            raise BenchError("the harness is not started")
        return self._shop

    @property
    def logs_dir(self) -> Path:
        return self.mesh.logs_dir

    def step(self, label: str, action: Callable[[], T], outcome: Callable[[T], str] = lambda _: "done") -> T:
        """One progress line: ``label ... outcome (1.2s)``."""
        self.progress.begin(label)
        try:
            result = action()
        except KeyboardInterrupt:
            self.progress.fail("interrupted")
            raise
        except BaseException as error:
            self.progress.fail(str(error) or type(error).__name__)
            raise
        self.progress.end(outcome(result))
        return result

    async def astep(self, label: str, action: Awaitable[T], outcome: Callable[[T], str] = lambda _: "done") -> T:
        """``step`` for a coroutine, inside a running event loop."""
        self.progress.begin(label)
        try:
            result = await action
        except KeyboardInterrupt:
            self.progress.fail("interrupted")
            raise
        except BaseException as error:
            self.progress.fail(str(error) or type(error).__name__)
            raise
        self.progress.end(outcome(result))
        return result

    def dsn(self, database: str, user: str = OBSERVER) -> str:
        """The mesh's PostgreSQL, database ``database``, as ``user``."""
        url = urlsplit(self.mesh.database_url)
        return url._replace(netloc=f"{user}@{url.hostname}:{url.port}", path="/" + database).geturl()

    def database_of(self, service: str) -> str:
        return self.mesh.settings.database_name(service)

    def metrics_url(self, name: str) -> str:
        url = self.mesh.metrics_url(name)
        assert url is not None, "the bench's mesh serves its metrics"
        return url

    def spawn(self, name: str, args: Sequence[str]) -> Process:
        """Starts a process of a benchmark (stopped by ``stop()``); its log is logs/<name>.log."""
        process = Process(name, list(args), self.logs_dir / f"{name}.log", env=self.mesh.env, cwd=ROOT)
        self._spawned.append(process)
        process.start()
        return process

    def channel(self, service: str) -> grpc.Channel:
        return grpc.insecure_channel(self.mesh.address_of(service))

    def stop(self, failed: bool) -> None:
        for process in reversed(self._spawned):
            process.stop(5)
        self.mesh.stop()
        if failed and self.logs_dir.exists():
            kept = RESULTS / "logs"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(self.logs_dir, kept)
            print(f"logs kept in {kept}", file=sys.stderr)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- seeding --------------------------------------------------------------

    def _prepare_statistics(self) -> None:
        async def prepare() -> None:
            conn = await asyncpg.connect(self.dsn("postgres", "postgres"))
            try:
                await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", OBSERVER):
                    await conn.execute(f"CREATE ROLE {OBSERVER} LOGIN SUPERUSER")
            finally:
                await conn.close()

        asyncio.run(prepare())

    def _create_admin(self, password: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "services.tenant", "create-admin", "--email", ADMIN_EMAIL,
             "--password-env", "BENCH_ADMIN_PASSWORD"],
            env={**self.mesh.env, "BENCH_ADMIN_PASSWORD": password}, cwd=ROOT, capture_output=True, text=True,
            timeout=120, check=False)
        if done.returncode != 0:
            raise BenchError(f"creating the platform admin failed:\n{done.stdout}{done.stderr}")

    def _open_shop(self) -> Shop:
        admin_password, seller_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        self._create_admin(admin_password)
        with self.channel("tenant") as channel:
            tenants = tenant_pb2_grpc.TenantServiceStub(channel)

            def login(tenant_id: str, email: str, password: str) -> str:
                reply = tenants.Login(tenant_pb2.LoginRequest(tenant_id=tenant_id, email=email, password=password),
                                      timeout=10)
                return str(reply.access_token)

            admin = self.admin = (("authorization", f"Bearer {login('platform', ADMIN_EMAIL, admin_password)}"),)
            state = tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
                tenant=tenant_pb2.Tenant(tenant_id=TENANT, display_name="Benchmark shop", currency_code="USD"),
                request_id="bench-tenant"), metadata=admin, timeout=30).tenant.state
            deadline = time.monotonic() + 30
            while state != tenant_pb2.TENANT_STATE_ACTIVE:
                if time.monotonic() > deadline:
                    raise BenchError(f"tenant {TENANT!r} is {tenant_pb2.TenantState.Name(state)} after 30s")
                time.sleep(0.2)
                state = tenants.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=TENANT), metadata=admin,
                                          timeout=10).tenant.state
            tenants.CreateUser(tenant_pb2.CreateUserRequest(
                tenant_id=TENANT, email=SELLER_EMAIL, password=seller_password, display_name="Benchmark seller",
                role=tenant_pb2.USER_ROLE_SELLER, request_id="bench-seller"), metadata=admin, timeout=10)
            return Shop(TENANT, login(TENANT, SELLER_EMAIL, seller_password))
