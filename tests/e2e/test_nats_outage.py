"""NATS stopped during checkout, on a whole mesh of its own (its own NATS, so the session's
is untouched): orders are still placed; once NATS is back every OrderConfirmed is delivered
and consumed exactly once — one email per order, bought units out of each cart, one inbox
row per event in each consumer."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.devmesh.mesh import Mesh
from services.devmesh.postgres import Postgres
from services.devmesh.probes import grpc_health
from tests.e2e.harness import (
    count,
    create_admin,
    new_customer,
    ok,
    open_shop,
    place_order,
    run_mesh,
    stocked_product,
    wait_until,
)

TENANT = "outage"
ORDERS = 6


@pytest.fixture(scope="module")
def own_mesh(workdir: Path, postgres: Postgres) -> Iterator[Mesh]:
    yield from run_mesh(workdir / "outage-mesh", postgres, "e2e_outage")


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
        shop = open_shop(rest, create_admin(own_mesh, rest, "admin@outage.test"), TENANT)
        product_id = stocked_product(rest, shop.seller, on_hand=100)
        buyers = [new_customer(rest, shop) for _ in range(ORDERS)]

        own_mesh.nats.stop()
        # a service (re)started while NATS is down serves, and says it may be missing revocations
        cart = own_mesh.processes["cart"]
        cart.stop()
        cart.start()
        cart_address = own_mesh.address_of("cart")
        wait_until("the restarted cart serving", lambda: grpc_health(cart_address) == "SERVING", 30)
        assert grpc_health(cart_address, "revocations") == "NOT_SERVING"
        orders = [place_order(rest, buyer, product_id, 1, "tok_sandbox_ok") for buyer in buyers]
        assert [o["status"] for o in orders] == ["ORDER_STATUS_CONFIRMED"] * ORDERS
        time.sleep(1.0)
        assert _confirmations(own_mesh.mail_dir) == Counter()  # nothing could be delivered yet
        own_mesh.nats.start()

        wait_until("the cart following revocations again",
                   lambda: grpc_health(cart_address, "revocations") == "SERVING", 30)
        wanted = Counter({o["orderId"]: 1 for o in orders})
        deadline = time.monotonic() + 30
        while _confirmations(own_mesh.mail_dir) != wanted and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # and nothing arrives a second time
        assert _confirmations(own_mesh.mail_dir) == wanted
        for buyer in buyers:  # the cart consumer took the bought units out of every cart
            assert ok(rest.get("/v1/cart", headers=buyer.auth))["cart"]["lines"] == []

    schema = "t_" + TENANT
    # every event that waited was published, then deleted from the outbox
    assert count(own_mesh, "order", f"SELECT count(*) FROM {schema}.outbox") == 0
    assert count(own_mesh, "cart", f"SELECT count(*) FROM {schema}.inbox "
                                          "WHERE consumer = 'cart-order-confirmed'") == ORDERS
