"""Fixtures shared by every test: real PostgreSQL and NATS servers, started by
the tests themselves on free ports in a temporary folder, once per session; and
the session's whole mesh on them (tests/e2e/harness.py), started by the first test
that asks for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.devmesh.mesh import free_port
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres

# The session's whole mesh, for every folder that asks for it (tests/e2e, tests/security): defined
# once, so started once per session.
from tests.e2e.harness import admin, mesh, rest

__all__ = ["admin", "free_port", "mesh", "own_nats", "rest"]  # fixtures, and free_port re-exported for the tests


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
    yield from own_nats(workdir / "nats")


def own_nats(folder: Path) -> Iterator[Nats]:
    """A NATS server of its own (``yield from`` it in a fixture). Services started by different
    test folders run durable consumers of the same names: on one NATS, one folder's consumer
    would take the other's events (each applying them to its own database)."""
    server = Nats(folder, free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _quiet_env() -> None:
    os.environ.setdefault("COMMERCE_LOG_LEVEL", "WARNING")
