"""A mesh of its own for fuzzing (started like the e2e one, on free ports, with its own
databases and NATS): random writes and floods of refused calls never touch the tenants,
counts or per-address limits the e2e tests rely on. One shop with a seller and a customer."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from services.devmesh.mesh import Mesh
from services.devmesh.postgres import Postgres
from tests.e2e.harness import Account, Shop, create_admin, login, ok, open_shop, run_mesh, service_dsn

TENANT = "fuzz-shop"


@pytest.fixture(scope="session")
def fuzz_mesh(workdir: Path, postgres: Postgres) -> Iterator[Mesh]:
    yield from run_mesh(workdir / "fuzz-mesh", postgres, "fuzz")


@pytest.fixture(scope="session")
def fuzz_rest(fuzz_mesh: Mesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_mesh.edge_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
def fuzz_admin(fuzz_mesh: Mesh, fuzz_rest: httpx.Client) -> Account:
    return create_admin(fuzz_mesh, fuzz_rest, "admin@fuzz.test")


@pytest.fixture(scope="session")
def fuzz_shop(fuzz_rest: httpx.Client, fuzz_admin: Account) -> Shop:
    return open_shop(fuzz_rest, fuzz_admin, TENANT)


@pytest.fixture(scope="session")
def fuzz_owner(fuzz_rest: httpx.Client, fuzz_admin: Account, fuzz_shop: Shop) -> Account:
    """The shop's owner: calls only owners (and admins) may make are fuzzed with its token."""
    email, password = f"owner@{TENANT}.test", secrets.token_urlsafe(12)
    ok(fuzz_rest.post(f"/v1/tenants/{TENANT}/users", headers=fuzz_admin.auth,
                      json={"email": email, "password": password, "role": "USER_ROLE_OWNER"}))
    return Account(TENANT, email, password, login(fuzz_rest, TENANT, email, password))


async def _row_counts(mesh: Mesh, tenant_id: str) -> dict[str, int]:
    """Rows of every table in the tenant's schema of every service database."""
    schema = "t_" + tenant_id.replace("-", "_")
    counts: dict[str, int] = {}
    for service in mesh.settings.provision_services:
        conn = await asyncpg.connect(service_dsn(mesh, service))
        try:
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 "
                "AND table_type = 'BASE TABLE' AND table_name <> 'alembic_version'", schema)
            for row in tables:
                name = row["table_name"]
                counts[f"{service}.{name}"] = int(await conn.fetchval(f'SELECT count(*) FROM "{schema}"."{name}"'))
        finally:
            await conn.close()
    return counts


def row_counts(mesh: Mesh, tenant_id: str) -> dict[str, int]:
    return asyncio.run(_row_counts(mesh, tenant_id))
