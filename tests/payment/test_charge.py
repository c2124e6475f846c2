"""ChargePayment: authorize and capture in one call for checkout; a declined card is a
DECLINED payment with nothing charged; one request_id is one charge, whatever happens."""

from __future__ import annotations

import asyncio

import pytest
from commerce.payment.v1 import payment_pb2 as pb

from services.payment.providers import sandbox
from services.runtime.db import Database
from tests.payment.conftest import Shop, count_rows, event_types, money, new_id


async def charge(shop: Shop, amount: int = 1000, token: str = sandbox.TOKEN_OK, *, order_id: str | None = None,
                 request_id: str | None = None) -> pb.Payment:
    reply = await shop.processing.ChargePayment(pb.ChargePaymentRequest(
        request_id=request_id or new_id(), order_id=order_id or new_id("ord"), amount=money(amount),
        payment_token=token), metadata=shop.service)
    payment: pb.Payment = reply.payment
    return payment


async def test_a_good_token_is_charged_the_whole_amount_with_one_event(shop: Shop, payment_db: Database) -> None:
    payment = await charge(shop, 2500, order_id="ord-charge")
    assert payment.status == pb.PAYMENT_STATUS_CAPTURED
    assert (payment.amount.amount_minor, payment.captured_amount.amount_minor) == (2500, 2500)
    assert payment.order_id == "ord-charge" and payment.provider_reference
    assert await shop.get(payment.payment_id) == payment
    assert await event_types(payment_db, shop.tenant) == ["PaymentCaptured"]


@pytest.mark.parametrize(("token", "status", "reason"), [
    (sandbox.TOKEN_DECLINED, pb.PAYMENT_STATUS_DECLINED, "CARD_DECLINED"),
    (sandbox.TOKEN_INSUFFICIENT_FUNDS, pb.PAYMENT_STATUS_DECLINED, "INSUFFICIENT_FUNDS"),
    (sandbox.TOKEN_ERROR, pb.PAYMENT_STATUS_FAILED, "PROVIDER_ERROR"),
])
async def test_a_refused_card_is_charged_nothing(shop: Shop, payment_db: Database, token: str, status: int,
                                                 reason: str) -> None:
    payment = await charge(shop, 1000, token)
    assert (payment.status, payment.decline_reason, payment.captured_amount.amount_minor) == (status, reason, 0)
    assert await event_types(payment_db, shop.tenant) == ["PaymentDeclined"]


async def test_the_same_charge_sent_ten_times_at_once_charges_once(shop: Shop, payment_db: Database) -> None:
    request_id, order_id = new_id(), new_id("ord")
    answers = await asyncio.gather(*(charge(shop, 700, order_id=order_id, request_id=request_id)
                                     for _ in range(10)))
    assert len({a.payment_id for a in answers}) == 1
    assert await count_rows(payment_db, shop.tenant, "payments") == 1
    assert await event_types(payment_db, shop.tenant) == ["PaymentCaptured"]
