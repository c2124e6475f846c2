"""Wiring of the payment service: its database, providers, outbox relay and servicers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import grpc
from commerce.payment.v1 import payment_pb2_grpc
from commerce.tenant.v1 import provisioning_pb2_grpc

from services.payment.payments import Payments
from services.payment.providers import sandbox
from services.payment.providers.base import ProviderFactory
from services.payment.servicer import PROCESSING, SERVICE, PaymentProcessingServicer, PaymentServicer
from services.runtime import provisioning
from services.runtime.bootstrap import open_database, remote_verifier
from services.runtime.budget import SANDBOX_POOL_SIZE
from services.runtime.db import Database
from services.runtime.events.relay import OutboxRelay
from services.runtime.provisioning import ProvisioningServicer
from services.runtime.server import App
from services.runtime.settings import Settings
from services.runtime.tokens import TokenVerifier

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def assemble(db: Database, verifier: TokenVerifier, settings: Settings,
             providers: Mapping[str, ProviderFactory] | None = None) -> App:
    """The App around an open database; ``build`` uses it, and tests with their own verifier."""
    # The sandbox plays a remote provider: its own small pool, so a payment transaction
    # holding one of ours never waits for a second one of ours (no pool starvation).
    sandbox_db = Database(db.server_url, db.database, SANDBOX_POOL_SIZE, listen_url=db.listen_url)
    factory = sandbox.SandboxFactory(sandbox_db, outage_file=settings.payment_sandbox_outage_file)
    payments = Payments(db, providers or {sandbox.NAME: factory},
                        settings.payment_provider_timeout_seconds)
    secrets = {sandbox.NAME: settings.payment_webhook_secret}
    relay = OutboxRelay(db, settings)

    def register(server: grpc.aio.Server) -> None:
        payment_pb2_grpc.add_PaymentServiceServicer_to_server(PaymentServicer(payments, secrets), server)
        payment_pb2_grpc.add_PaymentProcessingServiceServicer_to_server(PaymentProcessingServicer(payments), server)
        provisioning_pb2_grpc.add_ProvisioningServiceServicer_to_server(ProvisioningServicer(db, MIGRATIONS), server)

    return App(
        name="payment",
        services=[SERVICE, PROCESSING, provisioning.SERVICE],
        register=register,
        verifier=verifier,
        probes={"database": db.ping}, facets=db.facets(),
        on_start=[relay.start],
        on_stop=[relay.stop, sandbox_db.dispose, db.dispose],
    )


async def build(settings: Settings) -> App:
    db = await open_database(settings, "payment", MIGRATIONS)
    return assemble(db, remote_verifier(settings, "payment"), settings)
