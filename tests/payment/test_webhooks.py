"""HandleProviderWebhook: no token, the signature over the raw body authenticates
the call; an event id seen before is acknowledged and not applied again."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from commerce.payment.v1 import payment_pb2 as pb
from google.api import httpbody_pb2

from services.payment.domain.webhook import SIGNATURE_HEADER, sign
from services.runtime.db import Database
from tests.errors import reason_of
from tests.payment.conftest import WEBHOOK_SECRET, Shop, count_rows, event_types, new_id


def body_of(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


async def deliver(shop: Shop, body: bytes, signature: str | None = None, *, tenant: str | None = None,
                  provider: str = "sandbox") -> pb.HandleProviderWebhookResponse:
    metadata = () if signature == "" else ((SIGNATURE_HEADER, signature or sign(WEBHOOK_SECRET, body)),)
    reply: pb.HandleProviderWebhookResponse = await shop.payments.HandleProviderWebhook(
        pb.HandleProviderWebhookRequest(provider=provider, tenant_id=tenant or shop.tenant,
                                        body=httpbody_pb2.HttpBody(content_type="application/json", data=body)),
        metadata=metadata)
    return reply


async def test_signed_provider_refund_is_recorded(shop: Shop, payment_db: Database) -> None:
    payment = await shop.captured(1000)
    body = body_of(event_id="evt_1", type="payment.refunded", provider_reference=payment.provider_reference,
                   amount_minor=250, refund_reference="re_123")
    reply = await deliver(shop, body)
    assert (reply.event_id, reply.duplicate) == ("evt_1", False)
    after = await shop.get(payment.payment_id)
    assert after.status == pb.PAYMENT_STATUS_PARTIALLY_REFUNDED
    assert [(r.amount.amount_minor, r.provider_reference) for r in after.refunds] == [(250, "re_123")]
    assert (await event_types(payment_db, shop.tenant))[-1] == "PaymentRefunded"


async def test_signed_provider_capture_moves_an_authorized_payment(shop: Shop) -> None:
    payment = await shop.authorize(1000)
    await deliver(shop, body_of(event_id="evt_cap", type="payment.captured",
                                provider_reference=payment.provider_reference, amount_minor=800))
    after = await shop.get(payment.payment_id)
    assert (after.status, after.captured_amount.amount_minor) == (pb.PAYMENT_STATUS_CAPTURED, 800)


async def test_duplicate_event_id_is_acknowledged_and_applied_once(shop: Shop, payment_db: Database) -> None:
    payment = await shop.captured(1000)
    body = body_of(event_id="evt_dup", type="payment.refunded", provider_reference=payment.provider_reference,
                   amount_minor=100, refund_reference="re_dup")
    first = await deliver(shop, body)
    replies = await asyncio.gather(*(deliver(shop, body) for _ in range(5)))
    assert not first.duplicate
    assert all(r.duplicate and r.event_id == "evt_dup" for r in replies)
    assert (await shop.get(payment.payment_id)).refunded_amount.amount_minor == 100
    assert await count_rows(payment_db, shop.tenant, "provider_events") == 1


async def test_concurrent_first_deliveries_apply_once(shop: Shop) -> None:
    payment = await shop.captured(1000)
    body = body_of(event_id="evt_race", type="payment.refunded", provider_reference=payment.provider_reference,
                   amount_minor=100, refund_reference="re_race")
    replies = await asyncio.gather(*(deliver(shop, body) for _ in range(6)))
    assert sorted(r.duplicate for r in replies) == [False] + [True] * 5
    assert (await shop.get(payment.payment_id)).refunded_amount.amount_minor == 100


async def test_refund_we_made_ourselves_is_not_counted_twice(shop: Shop) -> None:
    payment = await shop.captured(1000)
    ours = await shop.refund(payment.payment_id, 300)
    await deliver(shop, body_of(event_id=new_id("evt"), type="payment.refunded",
                                provider_reference=payment.provider_reference, amount_minor=300,
                                refund_reference=ours.refund.provider_reference))
    assert (await shop.get(payment.payment_id)).refunded_amount.amount_minor == 300


@pytest.mark.parametrize("signature", ["0" * 64, "sha256=deadbeef", sign("another-secret", b"{}"), ""])
async def test_bad_or_missing_signature_is_unauthenticated_and_changes_nothing(
        shop: Shop, payment_db: Database, signature: str) -> None:
    payment = await shop.captured(1000)
    body = body_of(event_id="evt_forged", type="payment.refunded", provider_reference=payment.provider_reference,
                   amount_minor=1000, refund_reference="re_forged")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await deliver(shop, body, signature)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert reason_of(caught.value) in {"BAD_WEBHOOK_SIGNATURE", "WEBHOOK_SIGNATURE_REQUIRED"}
    assert await count_rows(payment_db, shop.tenant, "provider_events") == 0
    assert (await shop.get(payment.payment_id)).refunded_amount.amount_minor == 0


async def test_body_changed_after_signing_is_refused(shop: Shop) -> None:
    payment = await shop.captured(1000)
    signed = body_of(event_id="evt_x", type="payment.refunded", provider_reference=payment.provider_reference,
                     amount_minor=1, refund_reference="re_x")
    tampered = signed.replace(b'"amount_minor": 1', b'"amount_minor": 999')
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await deliver(shop, tampered, sign(WEBHOOK_SECRET, signed))
    assert reason_of(caught.value) == "BAD_WEBHOOK_SIGNATURE"


async def test_event_for_another_tenants_payment_changes_nothing(shop: Shop, other_shop: Shop) -> None:
    payment = await shop.captured(1000)
    body = body_of(event_id="evt_cross", type="payment.refunded", provider_reference=payment.provider_reference,
                   amount_minor=500, refund_reference="re_cross")
    reply = await deliver(other_shop, body)
    assert not reply.duplicate
    assert (await shop.get(payment.payment_id)).refunded_amount.amount_minor == 0


async def test_unknown_event_types_are_acknowledged_and_ignored(shop: Shop, payment_db: Database) -> None:
    reply = await deliver(shop, body_of(event_id="evt_other", type="account.updated"))
    assert not reply.duplicate
    assert await count_rows(payment_db, shop.tenant, "provider_events", "outcome = 'ignored'") == 1


async def test_unknown_provider_or_tenant_is_not_found(shop: Shop) -> None:
    body = body_of(event_id="evt_nf", type="account.updated")
    for call in (deliver(shop, body, provider="paypal"), deliver(shop, body, tenant="no-such-tenant")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"type": "payment.refunded"}',
                                  b'{"event_id": "e 1", "type": "x"}',
                                  b'{"event_id": "e1", "type": "payment.refunded", "provider_reference": "r"}'])
async def test_malformed_signed_body_names_the_body(shop: Shop, payment_db: Database, body: bytes) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await deliver(shop, body)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await count_rows(payment_db, shop.tenant, "provider_events") == 0
