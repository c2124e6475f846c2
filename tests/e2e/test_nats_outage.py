"""NATS stopped during checkout, on a whole mesh of its own (its own NATS, so the session's
is untouched): orders are still placed; once NATS is back every OrderConfirmed is delivered
and consumed exactly once — one email per order, bought units out of each cart, one inbox
row per event in each consumer."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from services.devmesh.mesh import ROOT, Mesh
from services.devmesh.postgres import Postgres
from services.devmesh.progress import Progress
from services.runtime.settings import Settings
from tests.e2e.conftest import Account, login, open_shop
from tests.e2e.test_checkout import new_customer, ok, place_order, stocked_product

TENANT = "outage"
ORDERS = 6


@pytest.fixture(scope="module")
def own_mesh(workdir: Path, postgres: Postgres) -> Iterator[Mesh]:
    settings = Settings().model_copy(update={
        "database_url": postgres.url, "database_prefix": "e2e_outage", "db_pool_size": 4,
        "health_probe_seconds": 0.5})
    mesh = Mesh.on_free_ports(workdir / "outage-mesh", settings, embedded_postgres=False, embedded_nats=True,
                              progress=Progress(0, stream=None))
    mesh.start()
    yield mesh
    mesh.stop()


def _admin(mesh: Mesh, rest: httpx.Client) -> Account:
    password, email = secrets.token_urlsafe(12), "admin@outage.test"
    done = subprocess.run(
        [sys.executable, "-m", "services.tenant", "create-admin", "--email", email, "--password-env", "E2E_PW"],
        env={**mesh.env, "E2E_PW": password}, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return Account("platform", email, password, login(rest, "platform", email, password))


async def _count(mesh: Mesh, service: str, sql: str) -> int:
    dsn = urlsplit(mesh.database_url)._replace(path="/" + mesh.settings.database_name(service)).geturl()
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def count(mesh: Mesh, service: str, sql: str) -> int:
    return asyncio.run(_count(mesh, service, sql))


def _confirmations(mail_dir: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in mail_dir.glob("*.eml") if mail_dir.exists() else []:
        text = path.read_text(errors="replace")
        if "is confirmed" in text:
            found[text.split("X-Commerce-Order: ", 1)[1].split()[0]] += 1
    return found


def test_orders_are_placed_while_nats_is_down_and_each_event_is_consumed_once_after(own_mesh: Mesh) -> None:
    assert own_mesh.nats is not None
    with httpx.Client(base_url=own_mesh.edge_url, timeout=20) as rest:
        shop = open_shop(rest, _admin(own_mesh, rest), TENANT)
        product_id = stocked_product(rest, shop.seller, on_hand=100)
        buyers = [new_customer(rest, shop) for _ in range(ORDERS)]

        own_mesh.nats.stop()
        orders = [place_order(rest, buyer, product_id, 1, "tok_sandbox_ok") for buyer in buyers]
        assert [o["status"] for o in orders] == ["ORDER_STATUS_CONFIRMED"] * ORDERS
        time.sleep(1.0)
        assert _confirmations(own_mesh.mail_dir) == Counter()  # nothing could be delivered yet
        own_mesh.nats.start()

        wanted = Counter({o["orderId"]: 1 for o in orders})
        deadline = time.monotonic() + 30
        while _confirmations(own_mesh.mail_dir) != wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # and nothing arrives a second time
        assert _confirmations(own_mesh.mail_dir) == wanted
        for buyer in buyers:  # the cart consumer took the bought units out of every cart
            assert ok(rest.get("/v1/cart", headers=buyer.auth))["cart"]["lines"] == []

    schema = "t_" + TENANT
    confirmed = "event_type = 'commerce.order.v1.OrderConfirmed'"
    assert count(own_mesh, "order", f"SELECT count(*) FROM {schema}.outbox WHERE {confirmed}") == ORDERS
    assert count(own_mesh, "order", f"SELECT count(*) FROM {schema}.outbox WHERE state <> 'sent'") == 0
    assert count(own_mesh, "cart", f"SELECT count(*) FROM {schema}.inbox "
                                          "WHERE consumer = 'cart-order-confirmed'") == ORDERS
