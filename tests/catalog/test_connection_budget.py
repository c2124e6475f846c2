"""A real catalog process under load holds no more PostgreSQL connections than the budget
counts for it (services/runtime/budget.py): the figure deploy/README.md and the manifests'
budget check multiply by the replicas is not a guess."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]
import grpc
from commerce.catalog.v1 import catalog_pb2 as pb

from services.devmesh.postgres import Postgres
from services.runtime.budget import listen_connections, pooled_connections
from services.runtime.db import plain_url
from services.runtime.settings import Settings
from tests.catalog.conftest import new_shop
from tests.catalog.harness import start_catalog
from tests.tokens import TestKeys


async def test_a_loaded_catalog_holds_at_most_its_budgeted_connections(postgres: Postgres, keys: TestKeys) -> None:
    settings = Settings(database_url=postgres.url, database_prefix="catbudget", db_pool_sizes={"catalog": 3})
    running, _ = await start_catalog(settings, keys, probe_seconds=0.05)
    budget = pooled_connections(settings, "catalog") + listen_connections("catalog")
    watcher = await asyncpg.connect(plain_url(postgres.url, "postgres"))
    most = 0
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal most
        while not done.is_set():
            count = await watcher.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                                           settings.database_name("catalog"))
            most = max(most, int(count))
            await asyncio.sleep(0.01)

    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            shop = await new_shop(channel, keys)
            sampler = asyncio.create_task(sample())
            for _ in range(3):
                await asyncio.gather(*(shop.create() for _ in range(60)))
                await asyncio.gather(*(shop.stub.ListProducts(pb.ListProductsRequest(page_size=50),
                                                              metadata=shop.customer) for _ in range(30)))
            done.set()
            await sampler
    finally:
        done.set()
        await watcher.close()
        await running.stop(0)
    # The load did fill the request pool (3), and the process stayed within its figure.
    print(f"catalog connections: at most {most} seen, budget {budget}")
    assert settings.pool_size_of("catalog") + 1 <= most <= budget, (most, budget)
