"""Fixtures shared by every test: real PostgreSQL and NATS servers, started by
the tests themselves on free ports in a temporary folder, once per session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devmesh.mesh import free_port
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres

__all__ = ["free_port"]  # re-exported: tests import it from here


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mesh")


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[Postgres]:
    server = Postgres(workdir / "pg", free_port(), fast_unsafe=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server(workdir: Path) -> Iterator[Nats]:
    server = Nats(workdir / "nats", free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _quiet_env() -> None:
    os.environ.setdefault("COMMERCE_LOG_LEVEL", "WARNING")
