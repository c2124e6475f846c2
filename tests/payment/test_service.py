"""The payment service as a process: health, and what survives a restart (the
sandbox provider's memory of a timed-out authorization), and webhooks refused
when no secret is configured."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc
import pytest
from commerce.payment.v1 import payment_pb2 as pb
from commerce.payment.v1 import payment_pb2_grpc
from google.api import httpbody_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr

from services.payment.app import MIGRATIONS, assemble
from services.payment.domain.webhook import SIGNATURE_HEADER, sign
from services.payment.providers import sandbox
from services.runtime.bootstrap import open_database
from services.runtime.db import Database
from services.runtime.server import Running, create_server
from services.runtime.settings import Settings
from tests.errors import reason_of
from tests.payment.conftest import Shop, count_rows, money, new_id
from tests.tokens import TestKeys


@asynccontextmanager
async def another_replica(settings: Settings, keys: TestKeys) -> AsyncIterator[grpc.aio.Channel]:
    """A second payment server on the same database (a restart, or another replica)."""
    db = await open_database(settings, "payment", MIGRATIONS)
    running: Running = await create_server(assemble(db, keys.verifier(), settings), "127.0.0.1:0", 0.2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield channel
    finally:
        await running.stop(0)


async def test_every_payment_service_reports_serving(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("commerce.payment.v1.PaymentService", "commerce.payment.v1.PaymentProcessingService", ""):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=name))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_retry_after_a_timeout_on_a_restarted_service_gets_the_original_authorization(
        shop: Shop, payment_db: Database, payment_settings: Settings, keys: TestKeys) -> None:
    request = pb.AuthorizePaymentRequest(request_id=new_id(), order_id=new_id("ord"), amount=money(990),
                                         payment_token=sandbox.TOKEN_TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.AuthorizePayment(request, metadata=shop.service)
    assert reason_of(caught.value) == "PROVIDER_TIMEOUT"
    async with another_replica(payment_settings, keys) as channel:
        reply = await payment_pb2_grpc.PaymentProcessingServiceStub(channel).AuthorizePayment(
            request, metadata=shop.service)
    assert reply.payment.status == pb.PAYMENT_STATUS_AUTHORIZED
    assert (await shop.get(reply.payment.payment_id)).amount.amount_minor == 990
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'authorize'") == 1


async def test_webhooks_are_refused_when_no_secret_is_configured(
        shop: Shop, payment_db: Database, payment_settings: Settings, keys: TestKeys) -> None:
    unsigned = payment_settings.model_copy(update={"payment_webhook_secret": SecretStr("")})
    body = json.dumps({"event_id": "evt_1", "type": "account.updated"}).encode()
    async with another_replica(unsigned, keys) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await payment_pb2_grpc.PaymentServiceStub(channel).HandleProviderWebhook(
                pb.HandleProviderWebhookRequest(provider="sandbox", tenant_id=shop.tenant,
                                                body=httpbody_pb2.HttpBody(data=body)),
                metadata=((SIGNATURE_HEADER, sign("", body)),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(caught.value) == "WEBHOOK_SECRET_NOT_CONFIGURED"
    assert await count_rows(payment_db, shop.tenant, "provider_events") == 0
