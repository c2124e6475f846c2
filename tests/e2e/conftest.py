"""One real mesh per test session, started the way `make run` starts it
(services as processes, meshinfo, Envoy), on free ports in a temporary folder,
using the session's PostgreSQL and NATS. Two tenants with a seller and a
customer each, created through the edge."""

from __future__ import annotations

import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.devmesh.mesh import ROOT, Mesh
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.devmesh.progress import Progress
from services.runtime.settings import Settings

ADMIN_EMAIL = "admin@e2e.test"


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


@dataclass(frozen=True)
class Shop:
    tenant_id: str
    seller: Account
    customer: Account


@pytest.fixture(scope="session")
def mesh(workdir: Path, postgres: Postgres, nats_server: Nats) -> Iterator[Mesh]:
    settings = Settings().model_copy(update={
        "database_url": postgres.url, "nats_url": nats_server.url, "database_prefix": "e2e", "db_pool_size": 4,
        "log_level": "INFO", "health_probe_seconds": 0.5,
        # Key rotation in seconds, not a minute: a new key signs 3 + 1 + 5 s after it is added.
        "edge_jwks_cache_seconds": 3, "keys_reload_seconds": 1.0,
    })
    started = Mesh.on_free_ports(workdir / "e2e-mesh", settings, embedded_postgres=False, embedded_nats=False,
                                 progress=Progress(0, stream=None))
    started.start()
    yield started
    started.stop()


@pytest.fixture(scope="session")
def rest(mesh: Mesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mesh.edge_url, timeout=20) as client:
        yield client


def login(rest: httpx.Client, tenant_id: str, email: str, password: str) -> str:
    reply = rest.post("/v1/auth/login", json={"tenantId": tenant_id, "email": email, "password": password})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["accessToken"])


@pytest.fixture(scope="session")
def admin(mesh: Mesh, rest: httpx.Client) -> Account:
    password = secrets.token_urlsafe(12)
    done = subprocess.run(
        [sys.executable, "-m", "services.tenant", "create-admin", "--email", ADMIN_EMAIL, "--password-env", "E2E_PW"],
        env={**mesh.env, "E2E_PW": password}, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return Account("platform", ADMIN_EMAIL, password, login(rest, "platform", ADMIN_EMAIL, password))


def _ok(reply: httpx.Response) -> Any:
    assert reply.status_code == 200, f"{reply.request.method} {reply.request.url}: {reply.status_code} {reply.text}"
    return reply.json()


def open_shop(rest: httpx.Client, admin: Account, tenant_id: str) -> Shop:
    _ok(rest.post("/v1/tenants", headers=admin.auth,
                  json={"tenantId": tenant_id, "displayName": f"Shop {tenant_id}", "currencyCode": "USD"}))
    seller_pw, customer_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    seller_email, customer_email = f"seller@{tenant_id}.test", f"customer@{tenant_id}.test"
    _ok(rest.post(f"/v1/tenants/{tenant_id}/users", headers=admin.auth,
                  json={"email": seller_email, "password": seller_pw, "role": "USER_ROLE_SELLER"}))
    _ok(rest.post(f"/v1/tenants/{tenant_id}/customers", json={"email": customer_email, "password": customer_pw}))
    return Shop(
        tenant_id,
        Account(tenant_id, seller_email, seller_pw, login(rest, tenant_id, seller_email, seller_pw)),
        Account(tenant_id, customer_email, customer_pw, login(rest, tenant_id, customer_email, customer_pw)),
    )


@pytest.fixture(scope="session")
def shop_a(rest: httpx.Client, admin: Account) -> Shop:
    return open_shop(rest, admin, "shop-a")


@pytest.fixture(scope="session")
def shop_b(rest: httpx.Client, admin: Account) -> Shop:
    return open_shop(rest, admin, "shop-b")


def product_json(sku: str | None = None, *, category: str = "e2e", price_minor: int = 1000,
                 title: str = "A product") -> dict[str, Any]:
    return {"sku": sku or f"SKU-{uuid.uuid4().hex[:10]}", "title": title, "category": category,
            "price": {"currencyCode": "USD", "amountMinor": str(price_minor)}}


def create_product(rest: httpx.Client, seller: Account, **kwargs: Any) -> dict[str, Any]:
    body = _ok(rest.post("/v1/products", headers=seller.auth, json={"product": product_json(**kwargs)}))
    return body["product"]  # type: ignore[no-any-return]
