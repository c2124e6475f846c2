"""What the tests against a whole mesh share (tests/e2e, tests/security, tests/fuzz):
starting a mesh on free ports, the session's mesh itself, accounts, shops, products
and orders made through the REST edge, and waiting for something to come true.

The session fixtures ``mesh``, ``rest`` and ``admin`` are defined here and made
visible to every folder by tests/conftest.py: one definition, so one mesh per
session, whichever folder asks first (a second definition would start a second
mesh, refused by the mesh lock on the same data folder)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import httpx
import jwt
import pytest

from services.devmesh.mesh import ROOT, Mesh
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.devmesh.progress import Progress
from services.runtime.settings import Settings

ADMIN_EMAIL = "admin@e2e.test"
ADDRESS = {"recipient": "Ada Buyer", "line1": "1 Main St", "city": "Springfield", "region": "IL",
           "postalCode": "62701", "countryCode": "US"}
FINAL = {"ORDER_STATUS_CONFIRMED", "ORDER_STATUS_FAILED", "ORDER_STATUS_CANCELLED"}


@dataclass(frozen=True)
class Account:
    tenant_id: str
    email: str
    password: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    @property
    def subject(self) -> str:
        """The user id the token names (its ``sub``)."""
        return str(jwt.decode(self.token, options={"verify_signature": False})["sub"])


@dataclass(frozen=True)
class Shop:
    tenant_id: str
    seller: Account
    customer: Account


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)


def run_mesh(folder: Path, postgres: Postgres, database_prefix: str, nats: Nats | None = None, *,
             metrics: bool = False, **settings: Any) -> Iterator[Mesh]:
    """A mesh on free ports using ``postgres`` (databases ``<database_prefix>_*``) and ``nats``, or a
    NATS of its own when None; started, yielded, stopped (``yield from`` it in a fixture).
    ``metrics``: the services serve their Prometheus metrics (Mesh.metrics_url)."""
    updates: dict[str, Any] = {"database_url": postgres.url, "database_prefix": database_prefix, "db_pool_size": 4,
                               "health_probe_seconds": 0.5, **settings}
    if nats is not None:
        updates["nats_url"] = nats.url
    mesh = Mesh.on_free_ports(folder, Settings().model_copy(update=updates), embedded_postgres=False,
                              embedded_nats=nats is None, progress=Progress(0, stream=None), metrics=metrics)
    mesh.start()
    try:
        yield mesh
    finally:
        mesh.stop()


def ok(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, f"{reply.request.method} {reply.request.url}: {reply.status_code} {reply.text}"
    return reply.json()


def login(rest: httpx.Client, tenant_id: str, email: str, password: str) -> str:
    reply = rest.post("/v1/auth/login", json={"tenantId": tenant_id, "email": email, "password": password})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["accessToken"])


def create_admin(mesh: Mesh, rest: httpx.Client, email: str) -> Account:
    """A platform admin, made the way an operator makes one (`python -m services.tenant create-admin`)."""
    password = secrets.token_urlsafe(12)
    done = subprocess.run(
        [sys.executable, "-m", "services.tenant", "create-admin", "--email", email, "--password-env", "E2E_PW"],
        env={**mesh.env, "E2E_PW": password}, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return Account("platform", email, password, login(rest, "platform", email, password))


def open_shop(rest: httpx.Client, admin: Account, tenant_id: str) -> Shop:
    ok(rest.post("/v1/tenants", headers=admin.auth,
                 json={"tenantId": tenant_id, "displayName": f"Shop {tenant_id}", "currencyCode": "USD"}))
    seller_pw, customer_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    seller_email, customer_email = f"seller@{tenant_id}.test", f"customer@{tenant_id}.test"
    ok(rest.post(f"/v1/tenants/{tenant_id}/users", headers=admin.auth,
                 json={"email": seller_email, "password": seller_pw, "role": "USER_ROLE_SELLER"}))
    ok(rest.post(f"/v1/tenants/{tenant_id}/customers", json={"email": customer_email, "password": customer_pw}))
    return Shop(
        tenant_id,
        Account(tenant_id, seller_email, seller_pw, login(rest, tenant_id, seller_email, seller_pw)),
        Account(tenant_id, customer_email, customer_pw, login(rest, tenant_id, customer_email, customer_pw)),
    )


def new_customer(rest: httpx.Client, shop: Shop) -> Account:
    """A customer of their own, so no other test's cart gets in the way."""
    email, password = f"buyer-{uuid.uuid4().hex[:10]}@{shop.tenant_id}.test", secrets.token_urlsafe(12)
    ok(rest.post(f"/v1/tenants/{shop.tenant_id}/customers", json={"email": email, "password": password}))
    return Account(shop.tenant_id, email, password, login(rest, shop.tenant_id, email, password))


def product_json(sku: str | None = None, *, category: str = "e2e", price_minor: int = 1000,
                 title: str = "A product") -> dict[str, Any]:
    return {"sku": sku or f"SKU-{uuid.uuid4().hex[:10]}", "title": title, "category": category,
            "price": {"currencyCode": "USD", "amountMinor": str(price_minor)}}


def create_product(rest: httpx.Client, seller: Account, **kwargs: Any) -> dict[str, Any]:
    body = ok(rest.post("/v1/products", headers=seller.auth, json={"product": product_json(**kwargs)}))
    return body["product"]  # type: ignore[no-any-return]


def stocked_product(rest: httpx.Client, seller: Account, on_hand: int, price_minor: int = 1250) -> str:
    product_id = str(create_product(rest, seller, price_minor=price_minor)["productId"])
    ok(rest.put(f"/v1/products/{product_id}/stock", headers=seller.auth, json={"onHand": str(on_hand)}))
    return product_id


def checkout(rest: httpx.Client, buyer: Account, product_id: str, quantity: int, token: str) -> httpx.Response:
    ok(rest.post("/v1/cart/items", headers=buyer.auth, json={"productId": product_id, "quantity": str(quantity)}))
    return rest.post("/v1/orders", headers=buyer.auth, json={
        "requestId": str(uuid.uuid4()), "shippingAddress": ADDRESS, "paymentToken": token, "email": buyer.email})


def order_when(rest: httpx.Client, auth: dict[str, str], order_id: str, statuses: set[str] = FINAL,
               timeout: float = 20) -> dict[str, Any]:
    """The order once its status is one of ``statuses`` (or as it is when ``timeout`` runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        order: dict[str, Any] = ok(rest.get(f"/v1/orders/{order_id}", headers=auth))["order"]
        if order["status"] in statuses or time.monotonic() >= deadline:
            return order
        time.sleep(0.1)


def place_order(rest: httpx.Client, buyer: Account, product_id: str, quantity: int, token: str) -> dict[str, Any]:
    """The order of ``quantity`` of the product, once the saga has settled it (confirmed, failed or cancelled)."""
    placed = ok(checkout(rest, buyer, product_id, quantity, token))["order"]
    return order_when(rest, buyer.auth, str(placed["orderId"]))


def confirmed_order(rest: httpx.Client, buyer: Account, product_id: str, quantity: int = 1) -> dict[str, Any]:
    order = place_order(rest, buyer, product_id, quantity, "tok_sandbox_ok")
    assert order["status"] == "ORDER_STATUS_CONFIRMED", order
    return order


def service_dsn(mesh: Mesh, service: str) -> str:
    """The PostgreSQL URL of the service's own database."""
    return urlsplit(mesh.database_url)._replace(path="/" + mesh.settings.database_name(service)).geturl()


async def _count(mesh: Mesh, service: str, sql: str) -> int:
    conn = await asyncpg.connect(service_dsn(mesh, service))
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


def count(mesh: Mesh, service: str, sql: str) -> int:
    """The number ``sql`` (a ``SELECT count(*) ...``) answers in the service's own database."""
    return asyncio.run(_count(mesh, service, sql))


# -- the session's mesh (made visible to every folder by tests/conftest.py) ------------------------


@pytest.fixture(scope="session")
def mesh(workdir: Path, postgres: Postgres, nats_server: Nats) -> Iterator[Mesh]:
    """The session's mesh, started the way `make run` starts it (services as processes, meshinfo,
    Envoy) on free ports, using the session's PostgreSQL and NATS."""
    yield from run_mesh(workdir / "e2e-mesh", postgres, "e2e", nats_server, log_level="INFO",
                        # Key rotation in seconds, not a minute: a new key signs 3 + 1 + 5 s after it is added.
                        edge_jwks_cache_seconds=3, keys_reload_seconds=1.0)


@pytest.fixture(scope="session")
def rest(mesh: Mesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.edge_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
def admin(mesh: Mesh, rest: httpx.Client) -> Account:
    return create_admin(mesh, rest, ADMIN_EMAIL)
