"""PlaceOrder through the whole mesh, next to a bare baseline, in one run:

- ``mesh max``: closed loop, ``vus`` concurrent callers, each PlaceOrder over native gRPC
  straight to the order service (token check, cart read, catalog reserve, payment
  authorize + capture with the sandbox provider, catalog commit, each step persisted
  with its outbox event). Every order has its own guest and cart, seeded beforehand
  (a guest token and one AddCartItem each), so the measured calls are PlaceOrder only.
- ``mesh half``: open loop at half the max rate: the latency a shop sees when not saturated.
- ``bare``: the same callers each running one asyncpg transaction: an order row, a
  conditional stock decrement, an outbox row (no RPC, no auth, no saga).
- event lag: for the orders of the half-rate run, OrderConfirmed's outbox row
  (create_time) to the cart's consumer inbox (processed_time); both clocks are the one
  PostgreSQL server's. create_time is the transaction's start, so the lag is a little high.

Targets (issue 3): mesh max / bare >= 0.5; p99 <= 50 ms at half the max rate; event lag
p99 <= 100 ms at 200 orders/s (or at the half rate, when that is lower: the run says).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import grpc
from commerce.cart.v1 import cart_pb2, cart_pb2_grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from commerce.common.v1 import money_pb2
from commerce.order.v1 import order_pb2, order_pb2_grpc
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc

from bench.cpu import CpuMeter
from bench.harness import BenchError, Harness

NAME = "placeorder"
SUMMARY = "PlaceOrder: full mesh (direct gRPC to order) vs a bare asyncpg transaction; event lag"
STEPS = 6  # products, carts, max run, carts, half-rate run, bare run (+ lag read)
PRODUCTS = 20
ADDRESS = order_pb2.Address(recipient="Bench Buyer", line1="1 Bench St", city="Springfield", region="IL",
                            postal_code="62701", country_code="US")
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
TARGET_LAG_P99_MS = 100.0
LAG_RATE = 200.0
CARTS_PER_S = 60
BARE_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_orders (order_id text PRIMARY KEY, customer_id text NOT NULL,
  product_id text NOT NULL, quantity bigint NOT NULL, total_minor bigint NOT NULL, status text NOT NULL,
  create_time timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS bench_stock (product_id text PRIMARY KEY, on_hand bigint NOT NULL CHECK (on_hand >= 0));
CREATE TABLE IF NOT EXISTS bench_outbox (event_id text PRIMARY KEY, subject text NOT NULL, event_type text NOT NULL,
  payload bytea NOT NULL, headers jsonb NOT NULL, state text NOT NULL DEFAULT 'pending',
  create_time timestamptz NOT NULL DEFAULT now());
"""


@dataclass(frozen=True)
class Options:
    vus: int = 16
    warmup_s: int = 2
    duration_s: int = 10


@dataclass(frozen=True)
class Measured:
    orders_per_s: float
    p50_ms: float
    p99_ms: float
    orders: int
    errors: int
    offered_per_s: float | None = None  # open loop: the arrival rate asked for


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _measured(latencies: list[float], errors: int, seconds: float, offered: float | None = None) -> Measured:
    return Measured(round(len(latencies) / seconds, 1), round(_percentile(latencies, 0.5) * 1000, 2),
                    round(_percentile(latencies, 0.99) * 1000, 2), len(latencies), errors, offered)


# -- seeding -------------------------------------------------------------------------------------

def seed_products(harness: Harness) -> list[str]:
    with harness.channel("catalog") as channel:
        catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        ids = []
        for n in range(PRODUCTS):
            product = catalog.CreateProduct(catalog_pb2.CreateProductRequest(product=catalog_pb2.Product(
                sku=f"ORDER-BENCH-{n:03d}", title=f"Order bench item {n}", category="bench",
                price=money_pb2.Money(currency_code="USD", amount_minor=1000 + n)),
                request_id=f"bench-order-product-{n}"), metadata=harness.shop.metadata, timeout=10).product
            catalog.SetStock(catalog_pb2.SetStockRequest(product_id=product.product_id, on_hand=100_000_000,
                                                         request_id=f"bench-order-stock-{n}"),
                             metadata=harness.shop.metadata, timeout=10)
            ids.append(str(product.product_id))
        return ids


async def _seed_carts(harness: Harness, products: list[str], count: int, concurrency: int = 16) -> list[str]:
    """``count`` guests, each with one line in its cart; their tokens."""
    tokens: list[str] = []
    async with grpc.aio.insecure_channel(harness.mesh.address_of("tenant")) as tenant_channel, \
            grpc.aio.insecure_channel(harness.mesh.address_of("cart")) as cart_channel:
        tenants = tenant_pb2_grpc.TenantServiceStub(tenant_channel)
        carts = cart_pb2_grpc.CartServiceStub(cart_channel)
        queue = iter(range(count))

        async def worker() -> None:
            for n in queue:
                token = (await tenants.CreateGuestToken(
                    tenant_pb2.CreateGuestTokenRequest(tenant_id=harness.shop.tenant_id), timeout=10)).access_token
                await carts.AddCartItem(cart_pb2.AddCartItemRequest(product_id=products[n % len(products)],
                                                                    quantity=1),
                                        metadata=(("authorization", f"Bearer {token}"),), timeout=10)
                tokens.append(token)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tokens


def seed_carts(harness: Harness, products: list[str], count: int) -> list[str]:
    return asyncio.run(_seed_carts(harness, products, count))


# -- load ----------------------------------------------------------------------------------------

Call = Callable[[int], Awaitable[None]]


async def _closed_loop(call: Call, vus: int, warmup_s: float, duration_s: float, limit: int) -> Measured:
    """``vus`` callers back to back; latencies of the calls started after the warm-up."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(limit))
    start = time.monotonic()
    measure_from, end = start + warmup_s, start + warmup_s + duration_s

    async def caller() -> None:
        nonlocal errors
        for n in counter:
            began = time.monotonic()
            if began >= end:
                return
            try:
                await call(n)
            except Exception:  # an error is counted, not raised: it is a benchmark
                errors += int(began >= measure_from)
                continue
            if began >= measure_from:
                latencies.append(time.monotonic() - began)

    await asyncio.gather(*(caller() for _ in range(vus)))
    return _measured(latencies, errors, min(duration_s, time.monotonic() - measure_from))


async def _open_loop(call: Call, rate: float, warmup_s: float, duration_s: float, limit: int) -> Measured:
    """Calls started at a fixed rate whatever the answers' speed (no coordinated omission)."""
    latencies: list[float] = []
    errors = 0
    tasks: list[asyncio.Task[None]] = []
    start = time.monotonic()
    measure_from = start + warmup_s
    total = min(limit, int(rate * (warmup_s + duration_s)))

    async def one(n: int, scheduled: float) -> None:
        nonlocal errors
        try:
            await call(n)
        except Exception:
            errors += int(scheduled >= measure_from)
            return
        if scheduled >= measure_from:
            latencies.append(time.monotonic() - scheduled)

    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n, scheduled)))
    await asyncio.gather(*tasks)
    return _measured(latencies, errors, duration_s, offered=round(rate, 1))


def _place(stub: order_pb2_grpc.OrderServiceStub, tokens: list[str], placed: list[str]) -> Call:
    async def call(n: int) -> None:
        reply = await stub.PlaceOrder(order_pb2.PlaceOrderRequest(
            request_id=f"bench-{uuid.uuid4().hex}", shipping_address=ADDRESS, payment_token="tok_sandbox_ok",
            email="buyer@bench.test"), metadata=(("authorization", f"Bearer {tokens[n]}"),), timeout=30)
        if reply.order.status != order_pb2.ORDER_STATUS_CONFIRMED:
            raise BenchError(f"order {reply.order.order_id} is {order_pb2.OrderStatus.Name(reply.order.status)}")
        placed.append(reply.order.order_id)
    return call


async def _mesh_run(harness: Harness, tokens: list[str], options: Options, rate: float | None,
                    placed: list[str]) -> Measured:
    async with grpc.aio.insecure_channel(harness.mesh.address_of("order")) as channel:
        call = _place(order_pb2_grpc.OrderServiceStub(channel), tokens, placed)
        if rate is None:
            return await _closed_loop(call, options.vus, options.warmup_s, options.duration_s, len(tokens))
        return await _open_loop(call, rate, options.warmup_s, options.duration_s, len(tokens))


def _dsn(harness: Harness, service: str) -> str:
    url = urlsplit(harness.mesh.database_url)
    return url._replace(path="/" + harness.mesh.settings.database_name(service)).geturl()


async def _bare_run(harness: Harness, options: Options) -> Measured:
    """One transaction per order, on the PostgreSQL server the mesh uses (its own database)."""
    admin = await asyncpg.connect(harness.mesh.database_url)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = 'bench_bare'"):
            await admin.execute("CREATE DATABASE bench_bare")
    finally:
        await admin.close()
    dsn = urlsplit(harness.mesh.database_url)._replace(path="/bench_bare").geturl()
    pool = await asyncpg.create_pool(dsn, min_size=options.vus, max_size=options.vus)
    try:
        await pool.execute(BARE_SCHEMA)
        await pool.executemany("INSERT INTO bench_stock VALUES ($1, 100000000) ON CONFLICT DO NOTHING",
                               [(f"p{n}",) for n in range(PRODUCTS)])
        headers = json.dumps({"Commerce-Event-Type": "commerce.order.v1.OrderPlaced", "Commerce-Tenant": "bench"})
        payload = os.urandom(300)

        async def call(n: int) -> None:
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

        return await _closed_loop(call, options.vus, options.warmup_s, options.duration_s, 10**9)
    finally:
        await pool.close()


async def _database_now(harness: Harness) -> Any:
    conn = await asyncpg.connect(_dsn(harness, "order"))
    try:
        return await conn.fetchval("SELECT now()")
    finally:
        await conn.close()


async def _event_lags(harness: Harness, since: Any) -> tuple[list[float], int]:
    """Seconds from each OrderConfirmed outbox row written after ``since`` to the cart consumer's
    inbox row of that event; and how many events never arrived within 15 s."""
    schema = harness.shop.schema
    orders = await asyncpg.connect(_dsn(harness, "order"))
    carts = await asyncpg.connect(_dsn(harness, "cart"))
    try:
        created = {r["event_id"]: r["create_time"] for r in await orders.fetch(
            f"SELECT event_id, create_time FROM {schema}.outbox "
            "WHERE event_type = 'commerce.order.v1.OrderConfirmed' AND create_time >= $1", since)}
        deadline = time.monotonic() + 15
        while True:
            done = {r["event_id"]: r["processed_time"] for r in await carts.fetch(
                f"SELECT event_id, processed_time FROM {schema}.inbox "
                "WHERE consumer = 'cart-order-confirmed' AND event_id = ANY($1::text[])", list(created))}
            if set(created) <= set(done) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        lags = [(done[e] - created[e]).total_seconds() for e in created if e in done]
        return lags, len(created) - len(lags)
    finally:
        await orders.close()
        await carts.close()


def run(harness: Harness, options: Options) -> dict[str, Any]:
    products = harness.step(f"seeding {PRODUCTS} products with large stock", lambda: seed_products(harness),
                            lambda ids: f"{len(ids)} products")
    # Carts for up to CARTS_PER_S orders/s (a 2-core box does far fewer); the half-rate run
    # gets its own, counted from the max. Running out is reported: the rate would be capped.
    guess = CARTS_PER_S * (options.warmup_s + options.duration_s)
    tokens = harness.step(f"seeding {guess} guest carts (guest token + AddCartItem each)",
                          lambda: seed_carts(harness, products, guess), lambda t: f"{len(t)} carts")
    order_pid = harness.mesh.processes["order"].pid
    pids = {name: harness.mesh.processes[name].pid for name in ("order", "cart", "catalog", "payment")}
    postgres = harness.mesh.postgres
    pids["postgres"] = postgres.process.pid if postgres and postgres.process else None
    meter = CpuMeter(pids)
    meter.start()
    maximum = harness.step(f"mesh max: {options.vus} callers, {options.warmup_s}s warm-up + {options.duration_s}s",
                           lambda: asyncio.run(_mesh_run(harness, tokens, options, None, [])),
                           lambda m: f"{m.orders_per_s:.0f} orders/s, p99 {m.p99_ms:.0f} ms, {m.errors} errors")
    max_cpu = meter.stop()
    if maximum.orders_per_s * (options.warmup_s + options.duration_s) >= 0.95 * len(tokens):
        print(f"note: the max run used up all {len(tokens)} seeded carts: the machine may sustain more "
              f"(raise CARTS_PER_S in bench/placeorder.py)")
    if maximum.orders == 0:
        raise BenchError(f"no order was placed (errors: {maximum.errors}); see {harness.logs_dir}")
    half_rate = max(1.0, maximum.orders_per_s / 2)
    needed = int(half_rate * (options.warmup_s + options.duration_s)) + 10
    half_tokens = harness.step(f"seeding {needed} guest carts for the half-rate run",
                               lambda: seed_carts(harness, products, needed), lambda t: f"{len(t)} carts")
    placed: list[str] = []
    since = asyncio.run(_database_now(harness))
    half = harness.step(f"mesh at half the max rate: {half_rate:.0f} orders/s, open loop",
                        lambda: asyncio.run(_mesh_run(harness, half_tokens, options, half_rate, placed)),
                        lambda m: f"{m.orders_per_s:.0f} orders/s, p99 {m.p99_ms:.0f} ms, {m.errors} errors")
    lags, missing = asyncio.run(_event_lags(harness, since))
    bare = harness.step(f"bare asyncpg transaction: {options.vus} callers",
                        lambda: asyncio.run(_bare_run(harness, options)),
                        lambda m: f"{m.orders_per_s:.0f} orders/s, p99 {m.p99_ms:.0f} ms")
    ratio = maximum.orders_per_s / bare.orders_per_s if bare.orders_per_s else float("nan")
    lag_p50, lag_p99 = _percentile(lags, 0.5) * 1000, _percentile(lags, 0.99) * 1000
    lag_rate = half.orders_per_s
    cores = {k: round(v, 2) for k, v in max_cpu.items()}
    _print(maximum, half, bare, ratio, lag_p50, lag_p99, len(lags), lag_rate, cores)
    if missing:
        print(f"{missing} OrderConfirmed events had not reached the cart consumer after 15 s")
    return {
        "summary": SUMMARY, "options": asdict(options), "order_pid": order_pid,
        "mesh_max": asdict(maximum), "mesh_half_rate": asdict(half), "bare": asdict(bare),
        "cpu_cores_during_max": cores,
        "ratio": {"value": round(ratio, 3), "target": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
        "p99_at_half_rate": {"value_ms": half.p99_ms, "target_ms": TARGET_P99_MS,
                             "met": half.p99_ms <= TARGET_P99_MS},
        "event_lag": {"events": len(lags), "at_orders_per_s": lag_rate, "p50_ms": round(lag_p50, 1),
                      "p99_ms": round(lag_p99, 1), "not_arrived": missing, "target_ms": TARGET_LAG_P99_MS,
                      "target_rate": LAG_RATE,
                      "met": lag_p99 <= TARGET_LAG_P99_MS, "at_target_rate": lag_rate >= LAG_RATE},
    }


def _print(maximum: Measured, half: Measured, bare: Measured, ratio: float, lag_p50: float, lag_p99: float,
           events: int, lag_rate: float, cores: dict[str, float]) -> None:
    rows = [("mesh, max (closed loop)", maximum), (f"mesh, {half.offered_per_s:.0f}/s (open loop)", half),
            ("bare asyncpg transaction", bare)]
    width = max(len(label) for label, _ in rows)
    head = f"{'scenario':<{width}}  {'orders/s':>8}  {'p50 ms':>7}  {'p99 ms':>7}  {'orders':>6}  {'errors':>6}"
    print()
    print(head)
    print("-" * len(head))
    for label, m in rows:
        print(f"{label:<{width}}  {m.orders_per_s:>8.1f}  {m.p50_ms:>7.2f}  {m.p99_ms:>7.2f}  {m.orders:>6}  "
              f"{m.errors:>6}")
    print()
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"mesh max / bare: {ratio:.3f}  (target >= {TARGET_RATIO}: {verdict})")
    verdict = "met" if half.p99_ms <= TARGET_P99_MS else "NOT met"
    print(f"p99 at half the max rate: {half.p99_ms:.1f} ms  (target <= {TARGET_P99_MS:g} ms: {verdict})")
    verdict = "met" if lag_p99 <= TARGET_LAG_P99_MS else "NOT met"
    where = "" if lag_rate >= LAG_RATE else f"; measured at {lag_rate:.0f} orders/s, the half rate this box sustains"
    print(f"event lag outbox -> cart consumer, {events} OrderConfirmed: p50 {lag_p50:.1f} ms, p99 {lag_p99:.1f} ms  "
          f"(target <= {TARGET_LAG_P99_MS:g} ms at {LAG_RATE:g} orders/s: {verdict}{where})")
    print("CPU cores during the max run: " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items())
          + f" (of {os.cpu_count()}, shared with the Python caller, Envoy idle)")
