"""CapturePayment and VoidPayment: each moves money once, and only along the
payment state machine."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from commerce.payment.v1 import payment_pb2 as pb

from services.payment.providers import sandbox
from services.runtime.db import Database
from tests.errors import reason_of
from tests.payment.conftest import Shop, count_rows, event_types, money, new_id


def void_request(payment: pb.Payment, request_id: str | None = None) -> pb.VoidPaymentRequest:
    return pb.VoidPaymentRequest(request_id=request_id or new_id(), payment_id=payment.payment_id,
                                 order_id=payment.order_id)


async def test_capture_charges_the_whole_authorized_amount(shop: Shop, payment_db: Database) -> None:
    captured = await shop.capture(await shop.authorize(3000))
    assert captured.status == pb.PAYMENT_STATUS_CAPTURED
    assert captured.captured_amount.amount_minor == 3000
    assert await shop.get(captured.payment_id) == captured
    assert await event_types(payment_db, shop.tenant) == ["PaymentAuthorized", "PaymentCaptured"]


async def test_partial_capture_charges_less_than_the_hold(shop: Shop) -> None:
    captured = await shop.capture(await shop.authorize(3000), amount=1800)
    assert (captured.status, captured.captured_amount.amount_minor) == (pb.PAYMENT_STATUS_CAPTURED, 1800)


async def test_same_capture_sent_ten_times_at_once_captures_once(shop: Shop, payment_db: Database) -> None:
    payment = await shop.authorize(5000)
    request_id = new_id()
    replies = await asyncio.gather(*(shop.capture(payment, request_id=request_id) for _ in range(10)))
    assert {r.status for r in replies} == {pb.PAYMENT_STATUS_CAPTURED}
    assert len({r.SerializeToString() for r in replies}) == 1
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'capture'") == 1
    assert (await event_types(payment_db, shop.tenant)).count("PaymentCaptured") == 1


async def test_second_capture_with_another_key_is_refused(shop: Shop, payment_db: Database) -> None:
    captured = await shop.captured(1000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.capture(captured)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "PAYMENT_ALREADY_CAPTURED"
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'capture'") == 1


async def test_concurrent_captures_with_different_keys_capture_once(shop: Shop, payment_db: Database) -> None:
    payment = await shop.authorize(5000)
    results = await asyncio.gather(*(shop.capture(payment) for _ in range(6)), return_exceptions=True)
    won = [r for r in results if isinstance(r, pb.Payment)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 1 and len(refused) == 5
    assert {reason_of(e) for e in refused} == {"PAYMENT_ALREADY_CAPTURED"}
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'capture'") == 1


async def test_capture_beyond_the_authorized_amount_is_refused(shop: Shop) -> None:
    payment = await shop.authorize(1000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.capture(payment, amount=1001)
    assert reason_of(caught.value) == "CAPTURE_EXCEEDS_AUTHORIZED"
    assert (await shop.get(payment.payment_id)).status == pb.PAYMENT_STATUS_AUTHORIZED


async def test_capture_for_another_order_is_refused(shop: Shop) -> None:
    payment = await shop.authorize(1000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.CapturePayment(pb.CapturePaymentRequest(
            request_id=new_id(), payment_id=payment.payment_id, order_id="ord-someone-else"), metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "PAYMENT_ORDER_MISMATCH"
    assert (await shop.get(payment.payment_id)).status == pb.PAYMENT_STATUS_AUTHORIZED


@pytest.mark.parametrize("token", [sandbox.TOKEN_DECLINED, sandbox.TOKEN_ERROR])
async def test_declined_or_failed_payment_cannot_be_captured(shop: Shop, token: str) -> None:
    payment = await shop.authorize(1000, token)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.capture(payment)
    assert reason_of(caught.value) == "INVALID_PAYMENT_STATUS"


async def test_capture_in_another_currency_names_the_field(shop: Shop) -> None:
    payment = await shop.authorize(1000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.CapturePayment(pb.CapturePaymentRequest(
            request_id=new_id(), payment_id=payment.payment_id, order_id=payment.order_id,
            amount=money(500, "EUR")), metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (await shop.get(payment.payment_id)).status == pb.PAYMENT_STATUS_AUTHORIZED


async def test_void_releases_the_hold_once(shop: Shop, payment_db: Database) -> None:
    payment = await shop.authorize(1000)
    request = void_request(payment)
    replies = await asyncio.gather(*(shop.processing.VoidPayment(request, metadata=shop.service) for _ in range(4)))
    assert {r.payment.status for r in replies} == {pb.PAYMENT_STATUS_VOIDED}
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'void'") == 1
    assert await event_types(payment_db, shop.tenant) == ["PaymentAuthorized", "PaymentVoided"]


async def test_voiding_again_or_a_declined_payment_is_a_no_op(shop: Shop, payment_db: Database) -> None:
    voided = (await shop.processing.VoidPayment(void_request(await shop.authorize()), metadata=shop.service)).payment
    again = (await shop.processing.VoidPayment(void_request(voided), metadata=shop.service)).payment
    assert again == voided
    declined = await shop.authorize(1000, sandbox.TOKEN_DECLINED)
    still = (await shop.processing.VoidPayment(void_request(declined), metadata=shop.service)).payment
    assert still == declined
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'void'") == 1


async def test_captured_payment_cannot_be_voided(shop: Shop) -> None:
    captured = await shop.captured()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.VoidPayment(void_request(captured), metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "PAYMENT_ALREADY_CAPTURED"
    assert (await shop.get(captured.payment_id)).status == pb.PAYMENT_STATUS_CAPTURED


async def test_voided_payment_cannot_be_captured(shop: Shop) -> None:
    voided = (await shop.processing.VoidPayment(void_request(await shop.authorize()), metadata=shop.service)).payment
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.capture(voided)
    assert reason_of(caught.value) == "INVALID_PAYMENT_STATUS"


async def test_unknown_payment_is_not_found(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.CapturePayment(pb.CapturePaymentRequest(
            request_id=new_id(), payment_id="pay_01JAAAAAAAAAAAAAAAAAAAAAAA", order_id="ord-1"), metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason_of(caught.value) == "PAYMENT_NOT_FOUND"
