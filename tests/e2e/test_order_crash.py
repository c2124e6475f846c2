"""The order process SIGKILLed mid-checkout under load, on a whole mesh of its own (real
processes, PostgreSQL, NATS and Envoy): callers retry with their request_id as a real
client does; once the process is back, every order ends CONFIRMED or compensated, none
is stuck, nothing is charged without its stock, and stock is sold exactly once."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import grpc
import httpx
import pytest
from commerce.cart.v1 import cart_pb2, cart_pb2_grpc
from commerce.order.v1 import order_pb2, order_pb2_grpc
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc

from services.devmesh.mesh import Mesh
from services.devmesh.postgres import Postgres
from services.devmesh.probes import grpc_health
from tests.e2e.harness import create_admin, open_shop, run_mesh, service_dsn, stocked_product, wait_until
from tests.errors import error_details

TENANT = "crash"
SCHEMA = "t_" + TENANT
GUESTS = 90
CALLERS = 8
KILL_AFTER = 15  # answered orders before the kill: the mesh is busy and warm
KILLS = 3  # kills at most, until one catches a checkout mid-way
ON_HAND = 1000
PRICE = 1250
ADDRESS = order_pb2.Address(recipient="Ada Buyer", line1="1 Main St", city="Springfield", country_code="US")


@pytest.fixture(scope="module")
def crash_mesh(workdir: Path, postgres: Postgres) -> Iterator[Mesh]:
    # A dead process's saga is taken over within a few seconds, not the production half minute.
    yield from run_mesh(workdir / "crash-mesh", postgres, "e2e_crash", order_saga_lease_seconds=2.0,
                        order_recovery_interval_seconds=0.5, order_recovery_idle_seconds=0.5)


@dataclass
class Load:
    answered: list[str] = field(default_factory=list)  # order ids the callers were told
    retries: int = 0
    busy: asyncio.Event = field(default_factory=asyncio.Event)  # KILL_AFTER orders were answered

    def answer(self, order_id: str) -> None:
        self.answered.append(order_id)
        if len(self.answered) >= KILL_AFTER:
            self.busy.set()


def _order_id_of(error: grpc.aio.AioRpcError) -> str:
    order_id = error_details(error)[0].metadata["order_id"]
    assert order_id, f"a failed checkout names no order: {error}"
    return str(order_id)


async def _guests(edge: str, product_id: str) -> list[str]:
    """Guest tokens, each with one unit of the product in its cart."""
    async with grpc.aio.insecure_channel(edge) as channel:
        tenants, carts = tenant_pb2_grpc.TenantServiceStub(channel), cart_pb2_grpc.CartServiceStub(channel)
        tokens = []
        for _ in range(GUESTS):
            token = (await tenants.CreateGuestToken(tenant_pb2.CreateGuestTokenRequest(tenant_id=TENANT),
                                                    timeout=10)).access_token
            await carts.AddCartItem(cart_pb2.AddCartItemRequest(product_id=product_id, quantity=1),
                                    metadata=(("authorization", f"Bearer {token}"),), timeout=10)
            tokens.append(token)
        return tokens


async def _place_until_answered(orders: order_pb2_grpc.OrderServiceStub, token: str, load: Load) -> None:
    request = order_pb2.PlaceOrderRequest(request_id=str(uuid.uuid4()), shipping_address=ADDRESS,
                                          payment_token="tok_sandbox_ok", email="guest@crash.test")
    deadline = time.monotonic() + 60
    while True:
        try:
            reply = await orders.PlaceOrder(request, metadata=(("authorization", f"Bearer {token}"),), timeout=15)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.FAILED_PRECONDITION:  # a failed checkout, compensated
                load.answer(_order_id_of(error))
                return
            assert time.monotonic() < deadline, f"PlaceOrder never answered: {error}"
            load.retries += 1  # the order service is down (or restarting): same request_id again
            await asyncio.sleep(0.2)
            continue
        load.answer(reply.order.order_id)
        return


async def _unfinished(mesh: Mesh) -> int:
    conn = await asyncpg.connect(service_dsn(mesh, "order"))
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.orders WHERE saga_step <> 'DONE'"))
    finally:
        await conn.close()


async def _run_load_and_kill(mesh: Mesh, tokens: list[str]) -> tuple[Load, int]:
    load = Load()
    queue = iter(tokens)
    order_process = mesh.processes["order"]
    left_mid_saga = -1

    async with grpc.aio.insecure_channel(mesh.edge_address) as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)

        async def caller() -> None:
            for token in queue:
                await _place_until_answered(orders, token, load)

        async def kill_mid_checkout() -> int:
            """SIGKILLs the order process the moment a checkout is under way; what it left behind."""
            conn = await asyncpg.connect(service_dsn(mesh, "order"))
            try:
                unfinished = f"SELECT count(*) FROM {SCHEMA}.orders WHERE saga_step <> 'DONE'"
                for _ in range(5000):  # 10 s at most
                    if await conn.fetchval(unfinished):
                        break
                    await asyncio.sleep(0.002)
                order_process.signal(signal.SIGKILL)
                await asyncio.to_thread(order_process.wait, 10)
                return int(await conn.fetchval(unfinished))
            finally:
                await conn.close()

        async def killer() -> None:
            nonlocal left_mid_saga
            await load.busy.wait()
            address = mesh.address_of("order")
            for attempt in range(KILLS):  # a checkout may finish between the look and the kill: again
                left_mid_saga = await kill_mid_checkout()
                order_process.start()
                await asyncio.to_thread(wait_until, "the order service serving again",
                                        lambda: grpc_health(address, "commerce.order.v1.OrderService") == "SERVING",
                                        30)
                if left_mid_saga or attempt == KILLS - 1:
                    return
                answered = len(load.answered)
                for _ in range(600):  # a round of answers more (30 s at most)
                    if len(load.answered) >= answered + CALLERS:
                        break
                    await asyncio.sleep(0.05)

        await asyncio.gather(killer(), *(caller() for _ in range(CALLERS)))
    return load, left_mid_saga


async def _outcomes(mesh: Mesh) -> dict[str, tuple[str, int, int]]:
    """order id -> (status, total, units) of every order of the tenant."""
    conn = await asyncpg.connect(service_dsn(mesh, "order"))
    try:
        rows = await conn.fetch(f"SELECT o.order_id, o.status, o.total_minor, sum(l.quantity) AS units "
                                f"FROM {SCHEMA}.orders o JOIN {SCHEMA}.order_lines l USING (order_id) "
                                "GROUP BY o.order_id")
    finally:
        await conn.close()
    return {r["order_id"]: (r["status"], r["total_minor"], int(r["units"])) for r in rows}


async def _money(mesh: Mesh) -> dict[str, list[tuple[str, int, int]]]:
    """order id -> its payments (status, captured, refunded)."""
    conn = await asyncpg.connect(service_dsn(mesh, "payment"))
    try:
        rows = await conn.fetch(f"SELECT order_id, status, captured_minor, refunded_minor FROM {SCHEMA}.payments")
    finally:
        await conn.close()
    found: dict[str, list[tuple[str, int, int]]] = {}
    for r in rows:
        found.setdefault(r["order_id"], []).append((r["status"], r["captured_minor"], r["refunded_minor"]))
    return found


async def _stock(mesh: Mesh, product_id: str) -> tuple[int, int, int]:
    """(on_hand, reserved, reservations still held)."""
    conn = await asyncpg.connect(service_dsn(mesh, "catalog"))
    try:
        on_hand, reserved = await conn.fetchrow(
            f"SELECT on_hand, reserved FROM {SCHEMA}.stock WHERE product_id = $1", product_id)
        held = await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.reservations WHERE state = 'HELD'")
    finally:
        await conn.close()
    return int(on_hand), int(reserved), int(held)


def test_the_order_process_killed_mid_checkout_leaves_every_order_confirmed_or_compensated(crash_mesh: Mesh) -> None:
    with httpx.Client(base_url=crash_mesh.edge_url, timeout=20) as rest:
        shop = open_shop(rest, create_admin(crash_mesh, rest, "admin@crash.test"), TENANT)
        product_id = stocked_product(rest, shop.seller, on_hand=ON_HAND, price_minor=PRICE)
    tokens = asyncio.run(_guests(crash_mesh.edge_address, product_id))

    load, left_mid_saga = asyncio.run(_run_load_and_kill(crash_mesh, tokens))

    assert left_mid_saga >= 1, "the kill caught no checkout mid-way: the test proved nothing"
    assert load.retries >= 1 and len(load.answered) == GUESTS
    wait_until("every saga finished", lambda: asyncio.run(_unfinished(crash_mesh)) == 0, 30)
    outcomes = asyncio.run(_outcomes(crash_mesh))
    assert set(load.answered) <= set(outcomes) and len(outcomes) == GUESTS  # one order per request_id
    statuses = {status for status, _, _ in outcomes.values()}
    assert statuses <= {"CONFIRMED", "FAILED"}, statuses
    payments = asyncio.run(_money(crash_mesh))
    for order_id, (status, total, _units) in outcomes.items():
        taken = [(captured, refunded) for _, captured, refunded in payments.get(order_id, [])]
        if status == "CONFIRMED":  # charged exactly once, the whole total, nothing given back
            assert taken == [(total, 0)], (order_id, payments.get(order_id))
        else:  # compensated: whatever was taken was given back
            assert sum(c - r for c, r in taken) == 0, (order_id, payments.get(order_id))
    sold = sum(units for status, _, units in outcomes.values() if status == "CONFIRMED")
    assert sold >= GUESTS - KILLS * CALLERS  # only checkouts a kill interrupted may have failed

    def stock_settled() -> bool:
        return asyncio.run(_stock(crash_mesh, product_id)) == (ON_HAND - sold, 0, 0)
    wait_until("confirmed orders' stock committed and every other reservation released", stock_settled, 30)
