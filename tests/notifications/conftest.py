"""The notifications worker under test: its own NATS server (so no other test's events
reach it), a real aiosmtpd SMTP sink, and an "order service" database whose outbox
relay publishes the order events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest

from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.notifications.app import build
from services.notifications.sink import Sink, start_sink
from services.runtime.db import Database
from services.runtime.events.relay import OutboxRelay
from services.runtime.server import Running, create_server
from services.runtime.settings import Settings
from tests.conftest import free_port
from tests.events.harness import open_db, settings_for


class Mailbox:
    """The sink's folder, read as email messages; the sink can be stopped and restarted."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.server: Sink | None = None

    async def start(self) -> None:
        self.server = await start_sink(self.folder, port=self.port)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.close()
            self.server = None

    def messages(self, to: str | None = None) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        found = [parser.parsebytes(path.read_bytes()) for path in sorted(self.folder.glob("*.eml"))]
        return [m for m in found if to is None or m["To"] == to]


@dataclass
class Worker:
    settings: Settings
    orders: Database  # the order service's database (its outbox)
    notifications: Running
    mailbox: Mailbox
    nats: Nats


@pytest.fixture(scope="module")
async def worker(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Worker]:
    tmp = tmp_path_factory.mktemp("notifications")
    nats = Nats(tmp / "nats", free_port())
    nats.start()
    mailbox = Mailbox(tmp / "mail", free_port())
    await mailbox.start()
    settings = settings_for(postgres.url, nats.url, "ntf").model_copy(
        update={"smtp_port": mailbox.port, "smtp_timeout_seconds": 2.0})
    orders = await open_db(settings, "orders")
    relay = OutboxRelay(orders, settings)
    await relay.start()
    running = await create_server(await build(settings, nak_base_seconds=0.05, nak_max_seconds=0.5),
                                  "127.0.0.1:0", probe_seconds=0.5)
    yield Worker(settings, orders, running, mailbox, nats)
    await running.stop(0)
    await relay.stop()
    await orders.dispose()
    await mailbox.stop()
    nats.stop()
