"""RefundPayment: full or partial, several in a row, never beyond what was captured,
even when refunds race; a retried refund is applied once."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from commerce.payment.v1 import payment_pb2 as pb

from services.runtime.db import Database
from tests.errors import reason_of
from tests.payment.conftest import Shop, count_rows, event_types, new_id


async def test_partial_refunds_up_to_the_captured_amount_then_refusal(shop: Shop, payment_db: Database) -> None:
    payment = await shop.captured(1000)
    first = await shop.refund(payment.payment_id, 300)
    assert first.payment.status == pb.PAYMENT_STATUS_PARTIALLY_REFUNDED
    assert (first.refund.amount.amount_minor, first.payment.refunded_amount.amount_minor) == (300, 300)
    second = await shop.refund(payment.payment_id, 700)
    assert second.payment.status == pb.PAYMENT_STATUS_REFUNDED
    assert second.payment.refunded_amount.amount_minor == 1000
    assert [r.amount.amount_minor for r in second.payment.refunds] == [300, 700]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.refund(payment.payment_id, 1)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "REFUND_EXCEEDS_CAPTURED"
    assert await count_rows(payment_db, shop.tenant, "refunds") == 2
    assert (await event_types(payment_db, shop.tenant)).count("PaymentRefunded") == 2


async def test_refund_beyond_what_is_left_is_refused_and_changes_nothing(shop: Shop) -> None:
    payment = await shop.captured(1000)
    await shop.refund(payment.payment_id, 600)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.refund(payment.payment_id, 401)
    assert reason_of(caught.value) == "REFUND_EXCEEDS_CAPTURED"
    after = await shop.get(payment.payment_id)
    assert (after.refunded_amount.amount_minor, len(after.refunds)) == (600, 1)


async def test_refund_without_amount_gives_back_everything_left(shop: Shop) -> None:
    payment = await shop.captured(1000)
    await shop.refund(payment.payment_id, 250)
    rest = await shop.refund(payment.payment_id)
    assert rest.refund.amount.amount_minor == 750
    assert rest.payment.status == pb.PAYMENT_STATUS_REFUNDED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.refund(payment.payment_id)
    assert reason_of(caught.value) == "REFUND_EXCEEDS_CAPTURED"


async def test_refund_is_limited_to_the_captured_not_the_authorized_amount(shop: Shop) -> None:
    payment = await shop.capture(await shop.authorize(1000), amount=400)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.refund(payment.payment_id, 500)
    assert reason_of(caught.value) == "REFUND_EXCEEDS_CAPTURED"
    assert (await shop.refund(payment.payment_id)).refund.amount.amount_minor == 400


async def test_payment_never_captured_cannot_be_refunded(shop: Shop, payment_db: Database) -> None:
    payment = await shop.authorize(1000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.refund(payment.payment_id, 100)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "PAYMENT_NOT_CAPTURED"
    assert await count_rows(payment_db, shop.tenant, "refunds") == 0


async def test_concurrent_refunds_never_exceed_the_captured_amount(shop: Shop, payment_db: Database) -> None:
    payment = await shop.captured(1000)
    results = await asyncio.gather(*(shop.refund(payment.payment_id, 300) for _ in range(10)),
                                   return_exceptions=True)
    won = [r for r in results if isinstance(r, pb.RefundPaymentResponse)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(won) == 3 and len(refused) == 7
    assert {reason_of(e) for e in refused} == {"REFUND_EXCEEDS_CAPTURED"}
    after = await shop.get(payment.payment_id)
    assert after.refunded_amount.amount_minor == 900
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'refund'") == 3


async def test_retried_refund_is_applied_once(shop: Shop, payment_db: Database) -> None:
    payment = await shop.captured(1000)
    request_id = new_id()
    replies = await asyncio.gather(*(shop.refund(payment.payment_id, 400, request_id=request_id) for _ in range(5)))
    assert len({r.refund.refund_id for r in replies}) == 1
    assert (await shop.get(payment.payment_id)).refunded_amount.amount_minor == 400
    assert await count_rows(payment_db, shop.tenant, "refunds") == 1


@pytest.mark.parametrize("roles", [["seller"], ["owner"], ["admin"], ["service"]])
async def test_staff_and_services_may_refund(shop: Shop, roles: list[str]) -> None:
    payment = await shop.captured(1000)
    metadata = shop.service if roles == ["service"] else shop.as_(*roles)
    reply = await shop.refund(payment.payment_id, 100, metadata=metadata)
    assert reply.payment.refunded_amount.amount_minor == 100


async def test_customer_may_not_refund(shop: Shop) -> None:
    payment = await shop.captured(1000)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.refund(payment.payment_id, 100, metadata=shop.as_("customer"))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert (await shop.get(payment.payment_id)).refunded_amount.amount_minor == 0
