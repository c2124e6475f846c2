"""AuthorizePayment: sandbox tokens decide the outcome; a declined card is a DECLINED
payment, not an error; one request_id is one authorization, whatever happens."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from commerce.payment.v1 import payment_pb2 as pb

from services.payment.providers import sandbox
from services.runtime.db import Database
from tests.errors import reason_of
from tests.payment.conftest import Shop, count_rows, event_types, money, new_id


async def test_good_token_authorizes_the_amount(shop: Shop) -> None:
    payment = await shop.authorize(2500, sandbox.TOKEN_OK, order_id="ord-1")
    assert payment.status == pb.PAYMENT_STATUS_AUTHORIZED
    assert (payment.amount.amount_minor, payment.amount.currency_code) == (2500, "USD")
    assert payment.captured_amount.amount_minor == 0
    assert payment.order_id == "ord-1"
    assert payment.provider == "sandbox" and payment.provider_reference
    assert payment.name == f"payments/{payment.payment_id}"
    assert await shop.get(payment.payment_id) == payment


@pytest.mark.parametrize(("token", "status", "reason"), [
    (sandbox.TOKEN_DECLINED, pb.PAYMENT_STATUS_DECLINED, "CARD_DECLINED"),
    (sandbox.TOKEN_INSUFFICIENT_FUNDS, pb.PAYMENT_STATUS_DECLINED, "INSUFFICIENT_FUNDS"),
    (sandbox.TOKEN_ERROR, pb.PAYMENT_STATUS_FAILED, "PROVIDER_ERROR"),
    ("tok_unknown", pb.PAYMENT_STATUS_DECLINED, "INVALID_PAYMENT_TOKEN"),
])
async def test_refused_card_comes_back_as_a_declined_payment(
        shop: Shop, payment_db: Database, token: str, status: int, reason: str) -> None:
    payment = await shop.authorize(1000, token)
    assert (payment.status, payment.decline_reason) == (status, reason)
    assert await event_types(payment_db, shop.tenant) == ["PaymentDeclined"]


async def test_authorization_is_announced_by_an_event(shop: Shop, payment_db: Database) -> None:
    await shop.authorize()
    assert await event_types(payment_db, shop.tenant) == ["PaymentAuthorized"]


async def test_retry_with_the_same_request_id_returns_the_same_payment(shop: Shop, payment_db: Database) -> None:
    request_id, order_id = new_id(), new_id("ord")
    first = await shop.authorize(1000, order_id=order_id, request_id=request_id)
    again = await shop.authorize(1000, order_id=order_id, request_id=request_id)
    assert again == first
    assert await count_rows(payment_db, shop.tenant, "payments") == 1
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'authorize'") == 1


async def test_concurrent_retries_authorize_once(shop: Shop, payment_db: Database) -> None:
    request_id, order_id = new_id(), new_id("ord")
    replies = await asyncio.gather(*(shop.authorize(1000, order_id=order_id, request_id=request_id)
                                     for _ in range(8)))
    assert len({r.payment_id for r in replies}) == 1
    assert await count_rows(payment_db, shop.tenant, "payments") == 1
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'authorize'") == 1
    assert await event_types(payment_db, shop.tenant) == ["PaymentAuthorized"]


async def test_same_request_id_for_another_amount_is_refused(shop: Shop, payment_db: Database) -> None:
    request_id, order_id = new_id(), new_id("ord")
    await shop.authorize(1000, order_id=order_id, request_id=request_id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.authorize(2000, order_id=order_id, request_id=request_id)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "REQUEST_ID_REUSED"
    assert await count_rows(payment_db, shop.tenant, "payments") == 1


async def test_provider_timeout_then_retry_resolves_to_one_authorization(shop: Shop, payment_db: Database) -> None:
    request = pb.AuthorizePaymentRequest(request_id=new_id(), order_id=new_id("ord"), amount=money(4200),
                                         payment_token=sandbox.TOKEN_TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.AuthorizePayment(request, metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert reason_of(caught.value) == "PROVIDER_TIMEOUT"
    # The provider did authorize, but we recorded nothing: no payment, no event.
    assert await count_rows(payment_db, shop.tenant, "payments") == 0
    assert await count_rows(payment_db, shop.tenant, "outbox") == 0
    retried = await asyncio.gather(*(shop.processing.AuthorizePayment(request, metadata=shop.service)
                                     for _ in range(3)))
    assert {r.payment.payment_id for r in retried} == {retried[0].payment.payment_id}
    assert retried[0].payment.status == pb.PAYMENT_STATUS_AUTHORIZED
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'authorize'") == 1
    assert await count_rows(payment_db, shop.tenant, "payments") == 1
    assert await event_types(payment_db, shop.tenant) == ["PaymentAuthorized"]
    captured = await shop.capture(retried[0].payment)
    assert captured.status == pb.PAYMENT_STATUS_CAPTURED


async def test_only_services_may_move_money(shop: Shop, payment_db: Database) -> None:
    for roles in (["seller"], ["owner"], ["customer"], ["admin"]):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await shop.processing.AuthorizePayment(pb.AuthorizePaymentRequest(
                request_id=new_id(), order_id="ord-1", amount=money(100), payment_token=sandbox.TOKEN_OK),
                metadata=shop.as_(*roles))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await count_rows(payment_db, shop.tenant, "payments") == 0


async def test_many_concurrent_authorizations_all_complete(shop: Shop, payment_db: Database) -> None:
    """More payments in flight than the service's pool holds: the provider's own pool keeps them moving."""
    replies = await asyncio.gather(*(shop.authorize(100 + i) for i in range(30)))
    assert {r.status for r in replies} == {pb.PAYMENT_STATUS_AUTHORIZED}
    assert await count_rows(payment_db, shop.tenant, "payments") == 30


async def test_retry_after_a_timeout_with_another_amount_is_refused(shop: Shop, payment_db: Database) -> None:
    request = pb.AuthorizePaymentRequest(request_id=new_id(), order_id=new_id("ord"), amount=money(4200),
                                         payment_token=sandbox.TOKEN_TIMEOUT)
    with pytest.raises(grpc.aio.AioRpcError):
        await shop.processing.AuthorizePayment(request, metadata=shop.service)
    request.amount.amount_minor = 9999
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.AuthorizePayment(request, metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught.value) == "REQUEST_ID_REUSED"
    assert await count_rows(payment_db, shop.tenant, "payments") == 0
