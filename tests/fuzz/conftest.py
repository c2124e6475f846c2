"""A mesh of its own for fuzzing (started like the e2e one, on free ports, with its own
databases and NATS): random writes and floods of refused calls never touch the tenants,
counts or per-address limits the e2e tests rely on. One shop with a seller and a customer."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
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
from tests.e2e.conftest import Account, Shop, login, open_shop

TENANT = "fuzz-shop"


@pytest.fixture(scope="session")
def fuzz_mesh(workdir: Path, postgres: Postgres) -> Iterator[Mesh]:
    settings = Settings().model_copy(update={
        "database_url": postgres.url, "database_prefix": "fuzz", "db_pool_size": 4, "health_probe_seconds": 0.5})
    mesh = Mesh.on_free_ports(workdir / "fuzz-mesh", settings, embedded_postgres=False, embedded_nats=True,
                              progress=Progress(0, stream=None))
    mesh.start()
    yield mesh
    mesh.stop()


@pytest.fixture(scope="session")
def fuzz_rest(fuzz_mesh: Mesh) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_mesh.edge_url, timeout=20) as client:
        yield client


@pytest.fixture(scope="session")
def fuzz_shop(fuzz_mesh: Mesh, fuzz_rest: httpx.Client) -> Shop:
    password, email = secrets.token_urlsafe(12), "admin@fuzz.test"
    done = subprocess.run(
        [sys.executable, "-m", "services.tenant", "create-admin", "--email", email, "--password-env", "FUZZ_PW"],
        env={**fuzz_mesh.env, "FUZZ_PW": password}, cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    admin = Account("platform", email, password, login(fuzz_rest, "platform", email, password))
    return open_shop(fuzz_rest, admin, TENANT)


async def _row_counts(mesh: Mesh, tenant_id: str) -> dict[str, int]:
    """Rows of every table in the tenant's schema of every service database."""
    schema = "t_" + tenant_id.replace("-", "_")
    counts: dict[str, int] = {}
    for service in mesh.settings.provision_services:
        dsn = urlsplit(mesh.database_url)._replace(path="/" + mesh.settings.database_name(service)).geturl()
        conn = await asyncpg.connect(dsn)
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
