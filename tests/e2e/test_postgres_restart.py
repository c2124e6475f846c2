"""PostgreSQL restarted (fast shutdown, then started again) while shoppers check out, on a whole
mesh of its own (its own PostgreSQL and NATS): meanwhile the services say NOT_SERVING (their
database is unreachable) and shoppers retry with their request_id; once it is back every service
is SERVING again, every order ends CONFIRMED or compensated, none is charged twice or without its
order, and the stock matches what was confirmed."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from services.devmesh.mesh import Mesh, free_port
from services.devmesh.postgres import Postgres
from services.devmesh.probes import grpc_health
from tests.conftest import server_folder
from tests.e2e.harness import (
    ADDRESS,
    Account,
    count,
    create_admin,
    new_customer,
    open_shop,
    run_mesh,
    stocked_product,
    wait_until,
)

TENANT = "pgrestart"
SCHEMA = "t_" + TENANT
SHOPPERS = 4
ON_HAND = 500
ORDER = "commerce.order.v1.OrderService"


@pytest.fixture(scope="module")
def restart_mesh(workdir: Path) -> Iterator[tuple[Mesh, Postgres]]:
    with server_folder("pg-restart") as folder:
        postgres = Postgres(folder, free_port(), fast_unsafe=True, log_dir=workdir)
        postgres.start()
        try:
            for mesh in run_mesh(workdir / "pg-restart-mesh", postgres, "e2e_pg", order_saga_lease_seconds=2.0,
                                 order_recovery_interval_seconds=0.5, order_recovery_idle_seconds=0.5):
                yield mesh, postgres
        finally:
            postgres.stop()


def _retried(call: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool], errors: list[str]) -> bool:
    """Calls until ``done`` says the answer is final (as a client retrying the same request)."""
    for _ in range(300):
        try:
            reply = call()
            if done(reply):
                return True
            errors.append(str(reply.status_code))
        except httpx.HTTPError as error:
            errors.append(type(error).__name__)
        time.sleep(0.2)
    return False


def _shop(rest: httpx.Client, buyer: Account, product_id: str, stop: threading.Event, placed: list[str],
          errors: list[str]) -> None:
    """Checks out one unit at a time until ``stop``: each step retried until answered, the order
    with its request_id."""
    while not stop.is_set():
        request_id = str(uuid.uuid4())
        body = {"requestId": request_id, "shippingAddress": ADDRESS, "paymentToken": "tok_sandbox_ok",
                "email": buyer.email}
        # AddCartItem adds: a retry after an answer lost would add twice, so the cart is read first
        if not _retried(lambda: rest.get("/v1/cart", headers=buyer.auth), lambda r: r.status_code == 200, errors):
            return
        if not rest.get("/v1/cart", headers=buyer.auth).json()["cart"].get("lines"):
            if not _retried(lambda: rest.post("/v1/cart/items", headers=buyer.auth,
                                              json={"productId": product_id, "quantity": "1"}),
                            lambda r: r.status_code == 200, errors):
                return
        # placed, or a checkout that failed and was compensated (400 FAILED_PRECONDITION)
        if _retried(lambda b=body: rest.post("/v1/orders", headers=buyer.auth, json=b),  # type: ignore[misc]
                    lambda r: r.status_code in (200, 400), errors):
            placed.append(request_id)


def test_postgres_restarted_under_checkout_load_says_not_serving_then_every_order_settles_right(
        restart_mesh: tuple[Mesh, Postgres]) -> None:
    mesh, postgres = restart_mesh
    with httpx.Client(base_url=mesh.edge_url, timeout=20) as rest:
        shop = open_shop(rest, create_admin(mesh, rest, "admin@pgrestart.test"), TENANT)
        product_id = stocked_product(rest, shop.seller, on_hand=ON_HAND)
        buyers = [new_customer(rest, shop) for _ in range(SHOPPERS)]
        stop, placed, errors = threading.Event(), list[str](), list[str]()
        shoppers = [threading.Thread(target=_shop, args=(rest, b, product_id, stop, placed, errors)) for b in buyers]
        for thread in shoppers:
            thread.start()
        wait_until("a few orders placed", lambda: len(placed) >= 8, 30)

        assert postgres.process is not None
        postgres.process.send_signal(signal.SIGINT)  # fast shutdown: sessions are cut
        postgres.process.wait(30)
        order = mesh.address_of("order")
        services = [mesh.address_of(name) for name in ("tenant", "catalog", "cart", "order", "payment")]
        # each notices at its next probe (every second, each ping given a second): not all at once
        wait_until("the order service NOT_SERVING", lambda: grpc_health(order, ORDER) == "NOT_SERVING", 10)
        wait_until("every service NOT_SERVING", lambda: all(grpc_health(a) == "NOT_SERVING" for a in services), 10)
        before = len(placed)
        time.sleep(1.0)
        postgres.start()
        wait_until("every service SERVING again", lambda: all(grpc_health(a) == "SERVING" for a in services), 30)
        wait_until("orders placed after the restart", lambda: len(placed) >= before + 8, 60)
        stop.set()
        for thread in shoppers:
            thread.join(60)

    wait_until("every saga done", lambda: count(mesh, "order", f"SELECT count(*) FROM {SCHEMA}.orders "
                                                                "WHERE saga_step <> 'DONE'") == 0, 30)
    assert count(mesh, "order", f"SELECT count(*) FROM {SCHEMA}.orders WHERE status NOT IN "
                                "('CONFIRMED', 'FAILED')") == 0
    # charged exactly once when confirmed, nothing kept otherwise
    assert count(mesh, "payment", f"SELECT count(*) FROM (SELECT order_id FROM {SCHEMA}.payments "
                                  "WHERE captured_minor > 0 GROUP BY order_id HAVING count(*) > 1) twice") == 0
    confirmed = count(mesh, "order", f"SELECT count(*) FROM {SCHEMA}.orders WHERE status = 'CONFIRMED'")
    units = count(mesh, "order", f"SELECT coalesce(sum(l.quantity), 0) FROM {SCHEMA}.order_lines l "
                                 f"JOIN {SCHEMA}.orders o USING (order_id) WHERE o.status = 'CONFIRMED'")
    captured = count(mesh, "payment", f"SELECT count(*) FROM {SCHEMA}.payments "
                                      "WHERE captured_minor - refunded_minor > 0")
    assert captured == confirmed
    assert confirmed >= len(placed) - SHOPPERS * 2  # only checkouts the restart caught may have failed

    def stock_settled() -> bool:
        left = count(mesh, "catalog", f"SELECT on_hand * 100000 + reserved FROM {SCHEMA}.stock")
        return left == (ON_HAND - units) * 100000
    wait_until(f"stock down by exactly the {units} units confirmed, nothing reserved", stock_settled, 30)
