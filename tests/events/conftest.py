from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.devmesh.nats import Nats
from services.devmesh.postgres import Postgres
from services.runtime.db import Database
from services.runtime.events.relay import OutboxRelay
from services.runtime.settings import Settings
from tests.events.harness import open_db, settings_for


@pytest.fixture(scope="module")
def settings(postgres: Postgres, nats_server: Nats) -> Settings:
    return settings_for(postgres.url, nats_server.url, "evt")


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = await open_db(settings)
    yield database
    await database.dispose()


@pytest.fixture(scope="module")
async def relay(db: Database, settings: Settings) -> AsyncIterator[OutboxRelay]:
    running = OutboxRelay(db, settings)
    await running.start()
    await running.nats.wait_ready()
    yield running
    await running.stop()
