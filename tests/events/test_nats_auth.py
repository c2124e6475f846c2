"""NATS locked down, against a real nats-server running the deployment's accounts
(services/runtime/events/nats_accounts.py, deploy/k8s/nats/accounts.conf) with TLS
required of clients: nobody connects without a user, a password and the CA; each service may
publish its own events and never another's, nor delete or purge a stream; and the catalog
service itself, connected as its user over TLS, publishes its events, which the cart's user
reads through a JetStream consumer."""

from __future__ import annotations

import asyncio
import secrets
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc
from nats.aio.client import Client
from nats.js.api import ConsumerConfig

from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.events import naming
from services.runtime.events.connection import NatsAuth, NatsConnection
from services.runtime.events.nats_accounts import PUBLISHES, SYSTEM_USER, password_variable, render
from services.runtime.settings import Settings
from tests.catalog.conftest import product
from tests.catalog.harness import provision, start_catalog
from tests.conftest import free_port
from tests.tls import make_tls
from tests.tokens import TestKeys


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return {user: secrets.token_hex(16) for user in [*PUBLISHES, SYSTEM_USER]}


@pytest.fixture(scope="module")
def locked_nats(tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]) -> Iterator[tuple[Nats, Path]]:
    folder = tmp_path_factory.mktemp("locked-nats")
    tls = make_tls(folder / "tls", "localhost")
    (folder / "accounts.conf").write_text(render())
    conf = folder / "nats.conf"
    conf.write_text(f'include ./accounts.conf\ntls {{\n  cert_file: "{tls.cert}"\n  key_file: "{tls.key}"\n}}\n')
    server = Nats(folder / "data", free_port(), config=conf, scheme="tls",
                  env={password_variable(user): password for user, password in passwords.items()})
    server.start()
    yield server, tls.ca
    server.stop()


async def _connect(server: Nats, ca_file: Path | None, user: str = "", password: str = "") -> Client:
    options = NatsAuth(user, password, ca_file).options()
    return await nats.connect(server.url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0,
                              **options)


async def test_nobody_connects_without_a_password_or_without_the_ca(locked_nats: tuple[Nats, Path],
                                                                     passwords: dict[str, str]) -> None:
    server, ca_file = locked_nats
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await _connect(server, ca_file)
    with pytest.raises(Exception, match=r"(?i)authorization"):
        await _connect(server, ca_file, "catalog", "not-the-password")
    with pytest.raises(ssl.SSLError):
        await _connect(server, None, "catalog", passwords["catalog"])  # the server's certificate is not trusted
    nc = await _connect(server, ca_file, "catalog", passwords["catalog"])
    await nc.close()


async def test_a_service_publishes_its_own_events_only_and_cannot_delete_streams(
        locked_nats: tuple[Nats, Path], passwords: dict[str, str]) -> None:
    server, ca_file = locked_nats
    catalog = NatsConnection(server.url, "test-catalog", auth=NatsAuth("catalog", passwords["catalog"], ca_file))
    await catalog.start()
    js = await asyncio.wait_for(catalog.wait_ready(), 10)  # its user may create the streams
    try:
        own = await js.publish("commerce.catalog.v1.product_created.acme", b"x", timeout=3)
        assert own.stream == naming.STREAM
        for forged in ("commerce.order.v1.order_confirmed.acme", "commerce.tenant.v1.tenant_suspended.acme"):
            with pytest.raises(Exception):  # noqa: B017 - the server drops it: no acknowledgement comes
                await js.publish(forged, b"forged", timeout=1)
        with pytest.raises(Exception):  # noqa: B017
            await js.delete_stream(naming.STREAM)
        with pytest.raises(Exception):  # noqa: B017
            await js.purge_stream(naming.STREAM)
    finally:
        await catalog.close()

    # What reached the stream, read as another service (the cart) reads events: only the catalog's own.
    cart = NatsConnection(server.url, "test-cart", auth=NatsAuth("cart", passwords["cart"], ca_file))
    await cart.start()
    cart_js = await asyncio.wait_for(cart.wait_ready(), 10)
    try:
        sub = await cart_js.pull_subscribe("commerce.>", durable=None, stream=naming.STREAM,
                                           config=ConsumerConfig(inactive_threshold=30))
        subjects = [m.subject for m in await sub.fetch(10, timeout=2)]
        assert "commerce.catalog.v1.product_created.acme" in subjects
        assert not [s for s in subjects if not s.startswith("commerce.catalog.v1.")], subjects
        with pytest.raises(Exception):  # noqa: B017 - the cart publishes no events of its own
            await cart_js.publish("commerce.cart.v1.anything.acme", b"x", timeout=1)
    finally:
        await cart.close()


async def test_the_catalog_service_publishes_its_events_as_its_user_over_tls(
        locked_nats: tuple[Nats, Path], passwords: dict[str, str], postgres: Postgres) -> None:
    server, ca_file = locked_nats
    keys = TestKeys()
    settings = Settings(database_url=postgres.url, database_prefix="natsauth", nats_url=server.url,
                        nats_user="catalog", nats_password=passwords["catalog"], nats_tls_ca_file=ca_file)  # type: ignore[arg-type]
    running, _ = await start_catalog(settings, keys, events=True)
    cart = NatsConnection(server.url, "test-cart-2", auth=NatsAuth("cart", passwords["cart"], ca_file))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await provision(channel, keys, "auth-shop")
            stub = catalog_pb2_grpc.CatalogServiceStub(channel)
            created = (await stub.CreateProduct(pb.CreateProductRequest(product=product("NATS-1")),
                                                metadata=keys.metadata(tenant="auth-shop", roles=["seller"]))).product
        await cart.start()
        js = await asyncio.wait_for(cart.wait_ready(), 10)
        sub = await js.pull_subscribe("commerce.catalog.v1.product_created.auth-shop", durable=None,
                                      stream=naming.STREAM, config=ConsumerConfig(inactive_threshold=30))
        messages = await sub.fetch(1, timeout=10)
        assert messages[0].headers and messages[0].headers[naming.TENANT] == "auth-shop"
        assert created.product_id
    finally:
        await cart.close()
        await running.stop(0)
