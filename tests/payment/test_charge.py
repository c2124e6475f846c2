"""ChargePayment: authorize and capture in one call for checkout; a declined card is a
DECLINED payment with nothing charged; one request_id is one charge, whatever happens
(concurrent twins, a lost answer, a provider that only authorizes and captures)."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from commerce.payment.v1 import payment_events_pb2 as ev
from commerce.payment.v1 import payment_pb2 as pb

from services.payment.providers import sandbox
from services.runtime.db import Database
from tests.errors import reason_of
from tests.payment.conftest import (
    PROVIDER_DEADLINE,
    RecordedProviders,
    Shop,
    count_rows,
    event_types,
    money,
    new_id,
    published,
)


def charge_request(amount: int = 1000, token: str = sandbox.TOKEN_OK, *, order_id: str | None = None,
                   request_id: str | None = None, currency: str = "USD") -> pb.ChargePaymentRequest:
    return pb.ChargePaymentRequest(request_id=request_id or new_id(), order_id=order_id or new_id("ord"),
                                   amount=money(amount, currency), payment_token=token)


async def charge(shop: Shop, amount: int = 1000, token: str = sandbox.TOKEN_OK, *, order_id: str | None = None,
                 request_id: str | None = None) -> pb.Payment:
    reply = await shop.processing.ChargePayment(
        charge_request(amount, token, order_id=order_id, request_id=request_id), metadata=shop.service)
    payment: pb.Payment = reply.payment
    return payment


async def test_a_good_token_is_charged_the_whole_amount_with_one_event(
        shop: Shop, payment_db: Database, providers: RecordedProviders) -> None:
    request_id = new_id()
    payment = await charge(shop, 2500, order_id="ord-charge", request_id=request_id)
    assert payment.status == pb.PAYMENT_STATUS_CAPTURED
    assert (payment.amount.amount_minor, payment.captured_amount.amount_minor) == (2500, 2500)
    assert payment.order_id == "ord-charge" and payment.provider == "sandbox" and payment.provider_reference
    assert await shop.get(payment.payment_id) == payment
    [message] = await published(payment_db, shop.tenant)
    assert message.subject == f"commerce.payment.v1.payment_captured.{shop.tenant}"
    event = ev.PaymentCaptured.FromString(message.data)
    assert (event.payment, event.amount.amount_minor) == (payment, 2500)
    assert event.metadata.aggregate_id == payment.payment_id
    # One step at the provider: one operation, under the request_id.
    assert providers.calls[shop.tenant] == [("charge", request_id)]
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", f"idempotency_key = '{request_id}'") == 1


@pytest.mark.parametrize(("token", "status", "reason"), [
    (sandbox.TOKEN_DECLINED, pb.PAYMENT_STATUS_DECLINED, "CARD_DECLINED"),
    (sandbox.TOKEN_INSUFFICIENT_FUNDS, pb.PAYMENT_STATUS_DECLINED, "INSUFFICIENT_FUNDS"),
    (sandbox.TOKEN_ERROR, pb.PAYMENT_STATUS_FAILED, "PROVIDER_ERROR"),
    ("tok_unknown", pb.PAYMENT_STATUS_DECLINED, "INVALID_PAYMENT_TOKEN"),
])
async def test_a_refused_card_is_charged_nothing(shop: Shop, payment_db: Database, token: str, status: int,
                                                 reason: str) -> None:
    payment = await charge(shop, 1000, token)
    assert (payment.status, payment.decline_reason, payment.captured_amount.amount_minor) == (status, reason, 0)
    assert await shop.get(payment.payment_id) == payment
    [message] = await published(payment_db, shop.tenant)
    assert ev.PaymentDeclined.FromString(message.data).payment == payment
    assert await event_types(payment_db, shop.tenant) == ["PaymentDeclined"]


async def test_the_same_charge_sent_ten_times_at_once_charges_once(
        shop: Shop, payment_db: Database, providers: RecordedProviders) -> None:
    request = charge_request(700)
    answers = await asyncio.gather(*(shop.processing.ChargePayment(request, metadata=shop.service)
                                     for _ in range(10)))
    assert len({a.SerializeToString(deterministic=True) for a in answers}) == 1
    assert answers[0].payment.status == pb.PAYMENT_STATUS_CAPTURED
    assert await count_rows(payment_db, shop.tenant, "payments") == 1
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations") == 1
    assert await event_types(payment_db, shop.tenant) == ["PaymentCaptured"]
    assert set(providers.calls[shop.tenant]) == {("charge", request.request_id)}


async def test_a_retry_gets_the_first_charge_and_never_reaches_the_provider(
        shop: Shop, payment_db: Database, providers: RecordedProviders) -> None:
    request = charge_request(1200)
    first = await shop.processing.ChargePayment(request, metadata=shop.service)
    for _ in range(3):
        assert await shop.processing.ChargePayment(request, metadata=shop.service) == first
    assert providers.calls[shop.tenant] == [("charge", request.request_id)]
    assert await count_rows(payment_db, shop.tenant, "payments") == 1
    assert await event_types(payment_db, shop.tenant) == ["PaymentCaptured"]


async def test_a_retry_of_a_declined_charge_gets_the_decline(shop: Shop, providers: RecordedProviders) -> None:
    request = charge_request(1200, sandbox.TOKEN_DECLINED)
    first = await shop.processing.ChargePayment(request, metadata=shop.service)
    assert await shop.processing.ChargePayment(request, metadata=shop.service) == first
    assert first.payment.status == pb.PAYMENT_STATUS_DECLINED
    assert len(providers.calls[shop.tenant]) == 1


async def test_a_retry_after_a_refund_shows_the_payment_as_it_is_now(shop: Shop) -> None:
    request = charge_request(1000)
    first = await shop.processing.ChargePayment(request, metadata=shop.service)
    refunded = await shop.refund(first.payment.payment_id, 300)
    again = await shop.processing.ChargePayment(request, metadata=shop.service)
    assert again.payment == refunded.payment
    assert [r.amount.amount_minor for r in again.payment.refunds] == [300]


async def test_a_retry_after_the_provider_timed_out_gets_the_charge_at_once(
        shop: Shop, payment_db: Database, providers: RecordedProviders) -> None:
    request = charge_request(4200, sandbox.TOKEN_TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.ChargePayment(request, metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(caught.value) == "PROVIDER_TIMEOUT"
    # The provider charged, but its answer was lost: we recorded nothing, announced nothing.
    assert await count_rows(payment_db, shop.tenant, "payments") == 0
    assert await count_rows(payment_db, shop.tenant, "outbox") == 0
    started = time.monotonic()
    retried = await asyncio.gather(*(shop.processing.ChargePayment(request, metadata=shop.service)
                                     for _ in range(3)))
    assert time.monotonic() - started < PROVIDER_DEADLINE
    assert len({r.SerializeToString(deterministic=True) for r in retried}) == 1
    payment = retried[0].payment
    assert (payment.status, payment.captured_amount.amount_minor) == (pb.PAYMENT_STATUS_CAPTURED, 4200)
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations") == 1
    assert await count_rows(payment_db, shop.tenant, "payments") == 1
    assert await event_types(payment_db, shop.tenant) == ["PaymentCaptured"]
    assert set(providers.calls[shop.tenant]) == {("charge", request.request_id)}


async def test_a_retry_after_a_timeout_for_another_amount_is_refused(shop: Shop, payment_db: Database) -> None:
    request = charge_request(4200, sandbox.TOKEN_TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError):
        await shop.processing.ChargePayment(request, metadata=shop.service)
    request.amount.amount_minor = 9999  # nothing of ours remembers the request: the provider refuses its key
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.ChargePayment(request, metadata=shop.service)
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                               "REQUEST_ID_REUSED")
    assert await count_rows(payment_db, shop.tenant, "payments") == 0


@pytest.mark.parametrize(("field", "value"), [
    ("amount_minor", 1001), ("currency_code", "EUR"), ("order_id", "ord-other"),
    ("payment_token", sandbox.TOKEN_DECLINED),
])
async def test_the_request_id_of_a_charge_for_another_request_is_refused(
        shop: Shop, payment_db: Database, providers: RecordedProviders, field: str, value: object) -> None:
    request = charge_request(1000, order_id="ord-first")
    first = await shop.processing.ChargePayment(request, metadata=shop.service)
    other = pb.ChargePaymentRequest()
    other.CopyFrom(request)
    setattr(other.amount if field in ("amount_minor", "currency_code") else other, field, value)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.ChargePayment(other, metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "REQUEST_ID_REUSED"
    assert await count_rows(payment_db, shop.tenant, "payments") == 1
    assert len(providers.calls[shop.tenant]) == 1
    assert await shop.get(first.payment.payment_id) == first.payment


async def test_a_request_id_is_one_call_whatever_the_method(shop: Shop, payment_db: Database) -> None:
    authorize_id, charge_id, capture_id = new_id(), new_id(), new_id()
    authorized = await shop.authorize(1000, request_id=authorize_id)
    charged = await charge(shop, 1000, request_id=charge_id)
    captured = await shop.capture(await shop.authorize(1000), request_id=capture_id)
    calls = [
        # the request_id of an authorization, of a capture for a charge
        shop.processing.ChargePayment(charge_request(1000, order_id=authorized.order_id, request_id=authorize_id),
                                      metadata=shop.service),
        shop.processing.ChargePayment(charge_request(1000, order_id=captured.order_id, request_id=capture_id),
                                      metadata=shop.service),
        # the request_id of a charge for an authorization, a capture, a void, a refund
        shop.processing.AuthorizePayment(pb.AuthorizePaymentRequest(
            request_id=charge_id, order_id=charged.order_id, amount=money(1000), payment_token=sandbox.TOKEN_OK),
            metadata=shop.service),
        shop.processing.CapturePayment(pb.CapturePaymentRequest(
            request_id=charge_id, payment_id=authorized.payment_id, order_id=authorized.order_id),
            metadata=shop.service),
        shop.processing.VoidPayment(pb.VoidPaymentRequest(
            request_id=charge_id, payment_id=authorized.payment_id, order_id=authorized.order_id),
            metadata=shop.service),
        shop.payments.RefundPayment(pb.RefundPaymentRequest(
            request_id=charge_id, payment_id=charged.payment_id, amount=money(100)), metadata=shop.seller),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                                   "REQUEST_ID_REUSED")
    assert await count_rows(payment_db, shop.tenant, "payments") == 3
    assert (await shop.get(authorized.payment_id)).status == pb.PAYMENT_STATUS_AUTHORIZED
    assert await shop.get(charged.payment_id) == charged


async def test_a_provider_without_one_step_charge_authorizes_then_captures_under_the_same_key(
        shop: Shop, payment_db: Database, providers: RecordedProviders) -> None:
    providers.two_step.add(shop.tenant)
    request = charge_request(900)
    answers = await asyncio.gather(*(shop.processing.ChargePayment(request, metadata=shop.service)
                                     for _ in range(5)))
    assert len({a.SerializeToString(deterministic=True) for a in answers}) == 1
    payment = answers[0].payment
    assert (payment.status, payment.captured_amount.amount_minor) == (pb.PAYMENT_STATUS_CAPTURED, 900)
    assert set(providers.calls[shop.tenant]) == {("authorize", request.request_id), ("capture", request.request_id)}
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'authorize'") == 1
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'capture'") == 1
    declined = await charge(shop, 900, sandbox.TOKEN_DECLINED)
    assert declined.status == pb.PAYMENT_STATUS_DECLINED
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'capture'") == 1
    assert await event_types(payment_db, shop.tenant) == ["PaymentCaptured", "PaymentDeclined"]


async def test_another_tenant_neither_sees_nor_reuses_a_charge(shop: Shop, other_shop: Shop,
                                                               payment_db: Database) -> None:
    request = charge_request(1000)
    mine = (await shop.processing.ChargePayment(request, metadata=shop.service)).payment
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await other_shop.payments.GetPayment(pb.GetPaymentRequest(payment_id=mine.payment_id),
                                             metadata=other_shop.service)
    assert (caught.value.code(), reason_of(caught.value)) == (grpc.StatusCode.NOT_FOUND, "PAYMENT_NOT_FOUND")
    listed = await other_shop.payments.ListPayments(pb.ListPaymentsRequest(order_id=mine.order_id),
                                                    metadata=other_shop.service)
    assert list(listed.payments) == []
    # The same request_id in another tenant is another charge, not this one.
    theirs = (await other_shop.processing.ChargePayment(request, metadata=other_shop.service)).payment
    assert theirs.payment_id != mine.payment_id
    assert await shop.get(mine.payment_id) == mine
    assert await count_rows(payment_db, shop.tenant, "payments") == 1
    assert await count_rows(payment_db, other_shop.tenant, "payments") == 1


async def test_the_order_service_lists_an_orders_payments(shop: Shop) -> None:
    first = await charge(shop, 500, sandbox.TOKEN_DECLINED, order_id="ord-listed")
    second = await charge(shop, 500, order_id="ord-listed")
    await charge(shop, 500, order_id="ord-other")
    listed = await shop.payments.ListPayments(pb.ListPaymentsRequest(order_id="ord-listed", page_size=100),
                                              metadata=shop.service)
    assert list(listed.payments) == [second, first]


@pytest.mark.parametrize("roles", [["seller"], ["owner"], ["customer"], ["admin"]])
async def test_only_services_may_charge(shop: Shop, payment_db: Database, roles: list[str]) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.ChargePayment(charge_request(), metadata=shop.as_(*roles))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await count_rows(payment_db, shop.tenant, "payments") == 0
