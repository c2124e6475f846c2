"""Cost curves over the tenant count: the mesh with 1, 100 and 1,000 tenants (``--short``: 1, 10
and 100). At each count:

- **provisioning**: the tenants added to reach it, created through CreateTenant (4 at once), each
  answered once its schema exists in every service database; seconds per tenant;
- **start-up**: every service and the notifications worker stopped (SIGTERM) and started again
  together; seconds until each answers SERVING (its database open, every tenant schema's revision
  checked), and whether any schema was left to migrate;
- **at rest**: the whole mesh's CPU over 10 s with no traffic (what its background loops cost:
  relays' polls, the recovery worker, the sweeper, health probes), in cores: in the first 10 s
  after the restart (the loops ask about every schema in their first round, and the order
  recovery worker for lease + idle + 30 s after a start: services/runtime/busy.py), and settled,
  SETTLED_S after the restart (PostgreSQL's own work after the provisioning's DDL done too);
- **checkout in one tenant among many**: 8 callers, closed loop, 10 s, in the bench tenant:
  orders/s and p50/p99.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass
from typing import Any

import grpc
from commerce.order.v1 import order_pb2_grpc
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc

from bench.cpu import CpuClock, used
from bench.harness import BenchError, Harness
from bench.load import closed_loop
from bench.placeorder import _placer
from bench.seeding import Carts, seed_products
from bench.view import mesh_processes
from services.devmesh.probes import grpc_health

NAME = "tenants"
SUMMARY = "cost curves to 1,000 tenants: provisioning, start-up, CPU at rest, checkout in one tenant of many"
STEPS = 3
PROVISION_CONCURRENCY = 4
CALLERS, WARMUP_S, DURATION_S, IDLE_S = 8, 2, 10, 10
SETTLED_S = 100  # the order recovery worker's first 70 s after a start (lease 30 + idle 10 + 30) and more
RESTARTED = ("tenant", "catalog", "cart", "order", "payment", "notifications")


@dataclass(frozen=True)
class Options:
    short: bool = False

    @property
    def counts(self) -> tuple[int, ...]:
        return (1, 10, 100) if self.short else (1, 100, 1000)


async def _provision(harness: Harness, first: int, last: int) -> float:
    """Creates tenants ``first``..``last`` - 1; seconds per tenant."""
    started = time.monotonic()
    numbers = iter(range(first, last))
    async with grpc.aio.insecure_channel(harness.mesh.address_of("tenant")) as channel:
        tenants = tenant_pb2_grpc.TenantServiceStub(channel)

        async def worker() -> None:
            for n in numbers:
                reply = await tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
                    tenant=tenant_pb2.Tenant(tenant_id=f"shop-{n:05d}", display_name=f"Shop {n}", currency_code="USD"),
                    request_id=f"cost-tenant-{n}"), metadata=harness.admin, timeout=120)
                if reply.tenant.state != tenant_pb2.TENANT_STATE_ACTIVE:
                    raise BenchError(f"tenant shop-{n:05d} is {tenant_pb2.TenantState.Name(reply.tenant.state)}")

        await asyncio.gather(*(worker() for _ in range(PROVISION_CONCURRENCY)))
    return (time.monotonic() - started) / max(1, last - first)


def _restart(harness: Harness) -> dict[str, float]:
    """Stops every service and the worker, starts them together; seconds until each is SERVING."""
    mesh = harness.mesh
    processes = {name: mesh.processes[name] for name in RESTARTED if name in mesh.processes}
    for process in processes.values():
        process.signal(signal.SIGTERM)
    for process in processes.values():
        process.wait(30)
    started = time.monotonic()
    for process in processes.values():
        process.start()
    ready: dict[str, float] = {}
    health = {name: "" if name == "notifications" else f"commerce.{name}.v1.{name.capitalize()}Service"
              for name in processes}
    while len(ready) < len(processes):
        if time.monotonic() - started > 300:
            raise BenchError(f"not SERVING 300s after a restart: {sorted(set(processes) - set(ready))}")
        for name in processes:
            if name not in ready and grpc_health(mesh.address_of(name), health[name], 0.5) == "SERVING":
                ready[name] = round(time.monotonic() - started, 2)
        time.sleep(0.05)
    return ready


def _migrations_left(harness: Harness) -> int:
    return sum(grpc_health(harness.mesh.address_of(name), "migrations", 0.5) != "SERVING" for name in RESTARTED)


async def _at_rest(harness: Harness) -> float:
    clock = CpuClock(mesh_processes(harness))
    before = clock.sample()
    await asyncio.sleep(IDLE_S)
    after = clock.sample()
    return round(sum(used(before, after).values()) / (after.time - before.time), 3)


async def _checkout(harness: Harness, carts: Carts) -> dict[str, float]:
    async with grpc.aio.insecure_channel(harness.mesh.address_of("order")) as channel:
        run, seconds = await closed_loop(_placer(order_pb2_grpc.OrderServiceStub(channel)), carts.take(), CALLERS,
                                         WARMUP_S, DURATION_S)
    measured = run.measured(seconds)
    return {"orders_per_s": measured.per_s, "p50_ms": round(measured.p50_ms, 1),
            "p99_ms": round(measured.p99_ms, 1), "errors": measured.errors}


async def _run(harness: Harness, options: Options) -> dict[str, Any]:
    products = await seed_products(harness, 4)
    carts = Carts()
    await harness.astep("seeding carts of the bench tenant",
                        carts.seed(harness, products, 260 * CALLERS * len(options.counts)), lambda n: f"{n} ready")
    rows: list[dict[str, Any]] = []
    have = 1  # the bench tenant
    for count in options.counts:
        per_tenant = await _provision(harness, have, count) if count > have else 0.0
        added, have = count - have, max(have, count)
        startup = await asyncio.to_thread(_restart, harness)
        started = time.monotonic() - max(startup.values())
        left = await asyncio.to_thread(_migrations_left, harness)
        idle_after_start = await _at_rest(harness)
        checkout = await _checkout(harness, carts)
        await asyncio.sleep(max(0.0, started + SETTLED_S - time.monotonic()))
        idle = await _at_rest(harness)
        row = {"tenants": count, "added": added, "provision_s_per_tenant": round(per_tenant, 3),
               "startup_s": startup, "startup_max_s": max(startup.values()), "migrations_pending": left,
               "idle_cores": idle, "idle_after_start_cores": idle_after_start, **checkout}
        rows.append(row)
        harness.progress.note(f"  {count} tenants: {row}")
    print("\n| tenants | provisioning s/tenant | start-up s (slowest service) | CPU at rest, settled (cores) | "
          "CPU at rest, first 10 s after start | checkout orders/s | p50 ms | p99 ms |\n"
          "|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['tenants']} | {r['provision_s_per_tenant'] or '-'} | {r['startup_max_s']} | {r['idle_cores']} | "
              f"{r['idle_after_start_cores']} | {r['orders_per_s']} | {r['p50_ms']} | {r['p99_ms']} |")
    return {"rows": rows, "failed": None}


def run(harness: Harness, options: Options) -> dict[str, Any]:
    return asyncio.run(_run(harness, options))
