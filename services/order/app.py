"""Wiring of the order service: its database, the peers it calls, the saga runner,
the recovery worker, the outbox relay, the change feed behind WatchOrder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from commerce.order.v1 import order_pb2_grpc
from commerce.tenant.v1 import provisioning_pb2_grpc

from services.order import shortfall
from services.order.orders import Orders
from services.order.peers import Peers
from services.order.recovery import RecoveryWorker
from services.order.saga import AfterStep, SagaRunner
from services.order.servicer import SERVICE, OrderServicer
from services.order.watch import ChangeFeed
from services.runtime import provisioning
from services.runtime.bootstrap import open_database, remote_verifier
from services.runtime.db import Database
from services.runtime.events.consumer import EventConsumer
from services.runtime.events.listener import listener_dsn
from services.runtime.events.naming import subject_pattern
from services.runtime.events.relay import OutboxRelay
from services.runtime.provisioning import ProvisioningServicer
from services.runtime.server import App, Hook
from services.runtime.service_auth import ServiceTokens
from services.runtime.settings import Settings
from services.runtime.tokens import TokenVerifier

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class SagaTuning:
    lease_seconds: float = 30.0
    max_attempts: int = 4
    retry_seconds: float = 0.2
    recovery_interval_seconds: float = 5.0
    recovery_idle_seconds: float = 10.0
    watch_limit_seconds: float = 600.0


@dataclass
class Parts:
    """What tests reach into: the runner (crash hooks) and the recovery worker."""

    orders: Orders
    runner: SagaRunner
    recovery: RecoveryWorker
    feed: ChangeFeed


def assemble(db: Database, verifier: TokenVerifier, peers: Peers, *, tuning: SagaTuning = SagaTuning(),
             relay: OutboxRelay | None = None, shortfalls: EventConsumer | None = None,
             after_step: AfterStep | None = None,
             recover_in_background: bool = True) -> tuple[App, Parts]:
    runner = SagaRunner(db, peers, lease_seconds=tuning.lease_seconds, max_attempts=tuning.max_attempts,
                        retry_seconds=tuning.retry_seconds, after_step=after_step)
    feed = ChangeFeed(listener_dsn(db))
    orders = Orders(db, peers, runner, feed)
    recovery = RecoveryWorker(db, runner, interval_seconds=tuning.recovery_interval_seconds,
                              idle_seconds=tuning.recovery_idle_seconds)

    def register(server: grpc.aio.Server) -> None:
        order_pb2_grpc.add_OrderServiceServicer_to_server(
            OrderServicer(orders, feed, tuning.watch_limit_seconds), server)
        provisioning_pb2_grpc.add_ProvisioningServiceServicer_to_server(ProvisioningServicer(db, MIGRATIONS), server)

    on_start: list[Hook] = [feed.start]
    on_stop: list[Hook] = [feed.stop]
    if recover_in_background:
        on_start.append(recovery.start)
        on_stop.insert(0, recovery.stop)
    if relay is not None:
        on_start.append(relay.start)
        on_stop.append(relay.stop)
    if shortfalls is not None:
        on_start.append(shortfalls.start)
        on_stop.append(shortfalls.stop)
    on_stop += [orders.close, peers.close, db.dispose]
    app = App(name="order", services=[SERVICE, provisioning.SERVICE], register=register, verifier=verifier,
              probes={"database": db.ping}, facets=db.facets(), on_start=on_start, on_stop=on_stop)
    return app, Parts(orders, runner, recovery, feed)


async def build(settings: Settings) -> App:
    db = await open_database(settings, "order", MIGRATIONS)
    tokens = ServiceTokens(settings, service="order")
    peers = Peers.connect({name: settings.address_of(name) for name in ("cart", "catalog", "payment")},
                          tokens.metadata)
    tuning = SagaTuning(lease_seconds=settings.order_saga_lease_seconds,
                        recovery_interval_seconds=settings.order_recovery_interval_seconds,
                        recovery_idle_seconds=settings.order_recovery_idle_seconds)
    app, _ = assemble(db, remote_verifier(settings, "order"), peers, tuning=tuning, relay=OutboxRelay(db, settings),
                      shortfalls=shortfall_consumer(db, settings))
    return app


def shortfall_consumer(db: Database, settings: Settings) -> EventConsumer:
    """Confirmed orders the catalog could not take the units of: cancelled and refunded."""
    return EventConsumer(db, settings, durable=shortfall.DURABLE,
                         subjects=[subject_pattern(shortfall.EVENT.DESCRIPTOR)],
                         handler=shortfall.on_stock_shortfall, script_location=MIGRATIONS)
