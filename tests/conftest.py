"""Fixtures shared by every test: real PostgreSQL and NATS servers, started by
the tests themselves on free ports in a temporary folder, once per session; and
the session's whole mesh on them (tests/e2e/harness.py), started by the first test
that asks for it."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from grpc.aio import _server as grpc_aio_server

from services.devmesh.mesh import free_port
from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.settings import Settings

# The session's whole mesh, for every folder that asks for it (tests/e2e, tests/security): defined
# once, so started once per session.
from tests.e2e.harness import admin, mesh, rest

__all__ = ["admin", "free_port", "mesh", "own_nats", "rest"]  # fixtures, and free_port re-exported for the tests


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mesh")


@pytest.fixture(scope="session")
def postgres(workdir: Path) -> Iterator[Postgres]:
    with server_folder("pg") as folder:
        server = Postgres(folder, free_port(), fast_unsafe=True, log_dir=workdir)
        server.start()
        yield server
        server.stop()


@contextmanager
def server_folder(name: str) -> Iterator[Path]:
    """A data folder for a PostgreSQL server, outside pytest's temporary root: a pytest session
    starting meanwhile on the machine makes that root private again (0700), and the server, running
    as a user of its own, would lose its files (its next checkpoint PANICs)."""
    parent = Path(tempfile.mkdtemp(prefix="commerce-test-"))
    try:
        yield parent / name
    finally:
        shutil.rmtree(parent, ignore_errors=True)


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


def run_ports() -> dict[int, str]:
    """`make run`'s default ports (port -> the variable that moves it): no test may bind one."""
    defaults = Settings.model_fields
    ports = {int(field.default): f"COMMERCE_{name.upper()}" for name, field in defaults.items()
             if name.endswith("_port") and isinstance(field.default, int) and field.default}  # 0: none
    offset = int(defaults["metrics_port_offset"].default)
    ports.update({port + offset: f"COMMERCE_METRICS_PORT_OFFSET (+ {variable})"
                  for port, variable in list(ports.items()) if port + offset not in ports})
    for name, variable in (("database_url", "DATABASE_URL"), ("nats_url", "NATS_URL")):
        ports[int(urlsplit(str(defaults[name].default)).port or 0)] = variable
    return ports


@pytest.fixture(scope="session", autouse=True)
def _no_fixed_ports() -> Iterator[None]:
    """Tests never bind a fixed port of `make run` (they would collide with a running mesh, and it
    with them): binding one in the test process fails at once, naming it. Servers the tests start
    as processes get free ports (Mesh.on_free_ports, free_port)."""
    forbidden = run_ports()

    def refuse(port: int) -> None:
        if port in forbidden:
            raise AssertionError(f"a test bound port {port}, `make run`'s {forbidden[port]}: bind port 0 "
                                 "(or free_port()) instead")

    bind, add_port = socket.socket.bind, grpc_aio_server.Server.add_insecure_port

    def checked_bind(self: socket.socket, address: Any) -> None:
        if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
            refuse(address[1])
        bind(self, address)

    def checked_add_port(self: grpc_aio_server.Server, address: str) -> int:
        tail = address.rsplit(":", 1)[-1]
        if tail.isdigit():
            refuse(int(tail))
        return int(add_port(self, address))

    socket.socket.bind = checked_bind  # type: ignore[method-assign,assignment]
    grpc_aio_server.Server.add_insecure_port = checked_add_port
    try:
        yield
    finally:
        socket.socket.bind = bind  # type: ignore[method-assign]
        grpc_aio_server.Server.add_insecure_port = add_port
