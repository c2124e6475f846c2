"""What one ChargePayment costs: N calls over gRPC to an in-process payment service
(uvloop, as ``run_service`` runs it) against its own PostgreSQL (with
pg_stat_statements) and NATS in a temporary folder. Prints CPU per call of this
process (client + server + outbox relay), of PostgreSQL and of NATS, and the
statements per call PostgreSQL ran in the payment database, by statement.

    python -m bench.charge [--calls 2000] [--concurrency 1]

Figures, not a test: compare runs on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import grpc
import uvloop
from commerce.common.v1 import money_pb2
from commerce.payment.v1 import payment_pb2 as pb
from commerce.payment.v1 import payment_pb2_grpc
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc

from bench.cpu import group_cpu_seconds
from services.devmesh.mesh import free_port
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.payment.app import MIGRATIONS, assemble
from services.runtime.bootstrap import open_database
from services.runtime.db import plain_url
from services.runtime.server import create_server
from services.runtime.settings import Settings
from tests.tokens import TestKeys

TENANT = "bench-pay"
WARMUP_CALLS = 200


async def _stat_statements(postgres: Postgres, database: str, reset: bool) -> list[tuple[int, str]]:
    conn = await asyncpg.connect(plain_url(postgres.url, database))
    try:
        if reset:
            await conn.execute("SELECT pg_stat_statements_reset()")
            return []
        rows = await conn.fetch(
            "SELECT calls, query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = $1 AND query NOT LIKE '%pg_stat_statements%' ORDER BY calls DESC", database)
        return [(int(r["calls"]), " ".join(str(r["query"]).split())) for r in rows]
    finally:
        await conn.close()


def _enable_stat_statements(postgres: Postgres) -> None:
    async def configure() -> None:
        conn = await asyncpg.connect(postgres.url)
        try:
            await conn.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
            await conn.execute("ALTER SYSTEM SET pg_stat_statements.track = 'all'")
        finally:
            await conn.close()
    asyncio.run(configure())
    postgres.stop()
    postgres.start()


async def _measure(settings: Settings, postgres: Postgres, nats: Nats, calls: int, concurrency: int) -> None:
    keys = TestKeys()
    db = await open_database(settings, "payment", MIGRATIONS)
    conn = await asyncpg.connect(plain_url(postgres.url, db.database))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await conn.close()
    running = await create_server(assemble(db, keys.verifier(), settings), "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await provisioning_pb2_grpc.ProvisioningServiceStub(channel).ProvisionTenant(
                provisioning_pb2.ProvisionTenantRequest(tenant_id=TENANT, currency_code="USD"),
                metadata=keys.metadata(tenant="platform", roles=["service"]))
            stub = payment_pb2_grpc.PaymentProcessingServiceStub(channel)
            metadata = (*keys.metadata(tenant="platform", roles=["service"], ttl_seconds=3600),
                        ("x-tenant-id", TENANT))

            async def charge(n: int) -> None:
                reply = await stub.ChargePayment(pb.ChargePaymentRequest(
                    request_id=f"chg-{uuid.uuid4().hex}", order_id=f"ord-{n}",
                    amount=money_pb2.Money(currency_code="USD", amount_minor=1000 + n % 97),
                    payment_token="tok_sandbox_ok"), metadata=metadata)
                assert reply.payment.status == pb.PAYMENT_STATUS_CAPTURED

            async def run(count: int) -> None:
                next_n = iter(range(count))

                async def worker() -> None:
                    for n in next_n:
                        await charge(n)
                await asyncio.gather(*(worker() for _ in range(concurrency)))

            await run(WARMUP_CALLS)
            await asyncio.sleep(1.0)  # the relay publishes the warm-up's events
            await _stat_statements(postgres, db.database, reset=True)
            assert postgres.process is not None and nats.process is not None
            pg_before, nats_before = group_cpu_seconds(postgres.process.pid), group_cpu_seconds(nats.process.pid)
            cpu_before, wall_before = time.process_time(), time.monotonic()
            await run(calls)
            wall = time.monotonic() - wall_before
            cpu = time.process_time() - cpu_before
            await asyncio.sleep(0.5)  # the relay's last batch
            pg_after, nats_after = group_cpu_seconds(postgres.process.pid), group_cpu_seconds(nats.process.pid)
            statements = await _stat_statements(postgres, db.database, reset=False)
    finally:
        await running.stop(0)

    def used(before: dict[int, float], after: dict[int, float]) -> float:
        return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())

    print(f"{calls} ChargePayment calls, {concurrency} in flight: {wall:.2f} s wall, {calls / wall:.0f} calls/s")
    print(f"  CPU per call: this process (client + server + relay) {cpu / calls * 1000:.2f} ms, "
          f"PostgreSQL {used(pg_before, pg_after) / calls * 1000:.2f} ms, "
          f"NATS {used(nats_before, nats_after) / calls * 1000:.2f} ms")
    total = sum(n for n, _ in statements)
    print(f"  statements per call (payment database, pg_stat_statements): {total / calls:.2f}")
    for n, query in statements:
        print(f"    {n / calls:6.3f}  {query[:150]}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.charge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="commerce-bench-charge-"))
    postgres = Postgres(workdir / "pg", free_port(), fast_unsafe=True)
    nats = Nats(workdir / "nats", free_port())
    try:
        postgres.start()
        _enable_stat_statements(postgres)
        nats.start()
        os.environ.setdefault("COMMERCE_LOG_LEVEL", "WARNING")
        settings = Settings(database_url=postgres.url, nats_url=nats.url, database_prefix="benchcharge",
                            log_level="WARNING")
        uvloop.run(_measure(settings, postgres, nats, args.calls, args.concurrency))
    finally:
        nats.stop()
        postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
