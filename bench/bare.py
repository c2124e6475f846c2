"""The bare baseline of PlaceOrder: from the same Python caller, one asyncpg transaction per
order on the mesh's PostgreSQL (its own database ``bench_bare``): a conditional stock
decrement, an order row, an outbox row. No RPC, no auth, no saga: what PostgreSQL alone
does on this machine, durably (for information; no target)."""

from __future__ import annotations

import itertools
import json
import os
import uuid

import asyncpg  # type: ignore[import-untyped]

from bench.harness import BenchError, Harness
from bench.load import Run, closed_loop

DATABASE = "bench_bare"
PRODUCTS = 20
SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_orders (order_id text PRIMARY KEY, customer_id text NOT NULL,
  product_id text NOT NULL, quantity bigint NOT NULL, total_minor bigint NOT NULL, status text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS bench_stock (product_id text PRIMARY KEY, on_hand bigint NOT NULL CHECK (on_hand >= 0));
CREATE TABLE IF NOT EXISTS bench_outbox (event_id text PRIMARY KEY, subject text NOT NULL, event_type text NOT NULL,
  payload bytea NOT NULL, headers jsonb NOT NULL, state text NOT NULL DEFAULT 'pending',
  create_time timestamptz NOT NULL DEFAULT now());
"""


async def run(harness: Harness, callers: int, warmup_s: float, duration_s: float) -> tuple[Run[int], float]:
    admin = await asyncpg.connect(harness.dsn("postgres"))
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await admin.execute(f"CREATE DATABASE {DATABASE}")
    finally:
        await admin.close()
    pool = await asyncpg.create_pool(harness.dsn(DATABASE), min_size=callers, max_size=callers)
    try:
        await pool.execute(SCHEMA)
        await pool.executemany("INSERT INTO bench_stock VALUES ($1, 100000000) ON CONFLICT DO NOTHING",
                               [(f"p{n}",) for n in range(PRODUCTS)])
        headers = json.dumps({"Commerce-Event-Type": "commerce.order.v1.OrderPlaced", "Commerce-Tenant": "bench"})
        payload = os.urandom(300)

        async def order(n: int) -> None:
            order_id, product = uuid.uuid4().hex, f"p{n % PRODUCTS}"
            async with pool.acquire() as conn, conn.transaction():
                left = await conn.fetchval("UPDATE bench_stock SET on_hand = on_hand - 1 WHERE product_id = $1 "
                                           "AND on_hand >= 1 RETURNING on_hand", product)
                if left is None:
                    raise BenchError("out of stock")
                await conn.execute("INSERT INTO bench_orders (order_id, customer_id, product_id, quantity, "
                                   "total_minor, status) VALUES ($1, $2, $3, 1, 1000, 'CONFIRMED')",
                                   order_id, f"guest:{n}", product)
                await conn.execute("INSERT INTO bench_outbox (event_id, subject, event_type, payload, headers) "
                                   "VALUES ($1, 'commerce.order.v1.order_placed.bench', "
                                   "'commerce.order.v1.OrderPlaced', $2, $3::jsonb)",
                                   uuid.uuid4().hex, payload, headers)

        return await closed_loop(order, itertools.count(), callers, warmup_s, duration_s)
    finally:
        await pool.close()
