"""Helpers for the events tests: a tenant database migrated with the event tables
(plus an ``effects`` table handlers write to), an event factory, JetStream readers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from commerce.order.v1 import order_events_pb2, order_pb2
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import text

from services.runtime.db import Database, ensure_database, schema_for
from services.runtime.migrations import upgrade_tenant
from services.runtime.settings import Settings
from services.runtime.sql import Session, Sql

MIGRATIONS = Path(__file__).parent / "migrations"
_EFFECT = Sql("INSERT INTO {schema}.effects (event_id, consumer) VALUES ($1, $2)")


async def record_effect(session: Session, event_id: str, consumer: str) -> None:
    """What the tests' handlers do: one row in the tenant's ``effects`` table."""
    await session.execute(_EFFECT, event_id, consumer)


def settings_for(postgres_url: str, nats_url: str, prefix: str) -> Settings:
    return Settings(database_url=postgres_url, nats_url=nats_url, database_prefix=prefix,
                    metrics_port_offset=0, db_pool_size=4, log_level="WARNING")


async def open_db(settings: Settings, service: str = "events") -> Database:
    name = settings.database_name(service)
    await ensure_database(settings.database_url, name)
    return Database(settings.database_url, name, 4)


def new_tenant() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


async def provisioned(db: Database, script_location: Path = MIGRATIONS) -> str:
    tenant = new_tenant()
    await upgrade_tenant(db, tenant, script_location)
    return tenant


def order_confirmed(order_id: str | None = None, email: str = "buyer@shop.example") -> order_events_pb2.OrderConfirmed:
    order_id = order_id or f"ord-{uuid.uuid4().hex[:8]}"
    return order_events_pb2.OrderConfirmed(order=order_pb2.Order(order_id=order_id, email=email))


async def scalar(db: Database, tenant: str, sql: str, **params: Any) -> Any:
    async with db.engine.connect() as conn:
        return await conn.scalar(text(sql.replace("{schema}", f'"{schema_for(tenant)}"')), params)


async def connect(url: str) -> Client:
    return await nats.connect(url, max_reconnect_attempts=2)


async def read_all(nc: Client, stream: str, subject: str, settle: float = 0.3) -> list[Msg]:
    """Every message of ``stream`` on ``subject`` (a filter), read with an ephemeral consumer."""
    js = nc.jetstream()
    sub = await js.pull_subscribe(subject, stream=stream, config=ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=5.0))
    found: list[Msg] = []
    try:
        while True:
            try:
                found += await sub.fetch(100, timeout=settle)
            except (TimeoutError, nats.errors.TimeoutError):
                return found
    finally:
        await sub.unsubscribe()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within}s")
        await asyncio.sleep(step)
