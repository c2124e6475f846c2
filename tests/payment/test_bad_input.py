"""Bad input on every payment call is INVALID_ARGUMENT naming the field, and nothing
is written (no payment, no refund, no provider call, no remembered answer, no event)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from commerce.payment.v1 import payment_pb2 as pb

from services.payment.providers import sandbox
from services.runtime.db import Database
from tests.errors import violated_fields
from tests.payment.conftest import RecordedProviders, Shop, count_rows, money

TABLES = ("payments", "refunds", "sandbox_operations", "idempotency_keys", "outbox")


def authorize(**changes: Any) -> pb.AuthorizePaymentRequest:
    request = pb.AuthorizePaymentRequest(request_id="req-1", order_id="ord-1", amount=money(1000),
                                         payment_token=sandbox.TOKEN_OK)
    for name, value in changes.items():
        if name == "amount":
            request.ClearField("amount")
            if value is not None:
                request.amount.CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


BAD_AUTHORIZATIONS = [
    (authorize(request_id=""), "request_id"),
    (authorize(request_id="r" * 129), "request_id"),
    (authorize(request_id="has space"), "request_id"),
    (authorize(order_id=""), "order_id"),
    (authorize(order_id="o" * 65), "order_id"),
    (authorize(order_id="ord\x00"), "order_id"),
    (authorize(amount=None), "amount"),
    (authorize(amount=money(0)), "amount.amount_minor"),
    (authorize(amount=money(-5)), "amount.amount_minor"),
    (authorize(amount=money(10**12 + 1)), "amount.amount_minor"),
    (authorize(amount=money(100, "usd")), "amount.currency_code"),
    (authorize(amount=money(100, "")), "amount.currency_code"),
    (authorize(payment_token=""), "payment_token"),
    (authorize(payment_token="tok with space"), "payment_token"),
    (authorize(payment_token="t" * 257), "payment_token"),
    (authorize(provider="paypal"), "provider"),
]


async def nothing_written(db: Database, tenant: str) -> None:
    for table in TABLES:
        assert await count_rows(db, tenant, table) == 0, table


@pytest.mark.parametrize(("bad", "field"), BAD_AUTHORIZATIONS)
async def test_bad_authorization_names_the_field_and_writes_nothing(
        shop: Shop, payment_db: Database, bad: pb.AuthorizePaymentRequest, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.AuthorizePayment(bad, metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]
    await nothing_written(payment_db, shop.tenant)


def as_charge(request: pb.AuthorizePaymentRequest) -> pb.ChargePaymentRequest:
    """The same fields in a ChargePaymentRequest (the two messages have the same fields)."""
    return pb.ChargePaymentRequest.FromString(request.SerializeToString())


@pytest.mark.parametrize(("bad", "field"), BAD_AUTHORIZATIONS)
async def test_bad_charge_names_the_field_and_writes_nothing(
        shop: Shop, payment_db: Database, providers: RecordedProviders, bad: pb.AuthorizePaymentRequest,
        field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.processing.ChargePayment(as_charge(bad), metadata=shop.service)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]
    await nothing_written(payment_db, shop.tenant)
    assert providers.calls[shop.tenant] == []


@pytest.mark.parametrize("call", ["AuthorizePayment", "ChargePayment"])
async def test_every_bad_field_is_named_at_once(shop: Shop, payment_db: Database, call: str) -> None:
    empty = pb.AuthorizePaymentRequest() if call == "AuthorizePayment" else pb.ChargePaymentRequest()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(shop.processing, call)(empty, metadata=shop.service)
    assert sorted(violated_fields(caught.value)) == ["amount", "order_id", "payment_token", "request_id"]
    await nothing_written(payment_db, shop.tenant)


async def test_bad_capture_and_void_name_the_field(shop: Shop, payment_db: Database) -> None:
    payment = await shop.authorize(1000)
    before = {t: await count_rows(payment_db, shop.tenant, t) for t in TABLES}
    pid, oid = payment.payment_id, payment.order_id
    cases: list[tuple[Any, str]] = [
        (shop.processing.CapturePayment(pb.CapturePaymentRequest(payment_id=pid, order_id=oid),
                                        metadata=shop.service), "request_id"),
        (shop.processing.CapturePayment(pb.CapturePaymentRequest(request_id="r1", order_id=oid),
                                        metadata=shop.service), "payment_id"),
        (shop.processing.CapturePayment(pb.CapturePaymentRequest(request_id="r1", payment_id=pid),
                                        metadata=shop.service), "order_id"),
        (shop.processing.CapturePayment(pb.CapturePaymentRequest(request_id="r1", payment_id=pid, order_id=oid,
                                                                 amount=money(0)),
                                        metadata=shop.service), "amount.amount_minor"),
        (shop.processing.VoidPayment(pb.VoidPaymentRequest(payment_id=pid, order_id=oid),
                                     metadata=shop.service), "request_id"),
        (shop.processing.VoidPayment(pb.VoidPaymentRequest(request_id="r1", payment_id=pid),
                                     metadata=shop.service), "order_id"),
    ]
    for call, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(caught.value) == [field]
    assert {t: await count_rows(payment_db, shop.tenant, t) for t in TABLES} == before
    assert (await shop.get(pid)).status == pb.PAYMENT_STATUS_AUTHORIZED


async def test_bad_refund_names_the_field_and_refunds_nothing(shop: Shop, payment_db: Database) -> None:
    payment = await shop.captured(1000)
    pid = payment.payment_id
    cases = [
        (pb.RefundPaymentRequest(payment_id=pid), "request_id"),
        (pb.RefundPaymentRequest(payment_id=pid, request_id="x" * 129), "request_id"),
        (pb.RefundPaymentRequest(request_id="r1"), "payment_id"),
        (pb.RefundPaymentRequest(payment_id=pid, request_id="r1", amount=money(0)), "amount.amount_minor"),
        (pb.RefundPaymentRequest(payment_id=pid, request_id="r1", amount=money(-1)), "amount.amount_minor"),
        (pb.RefundPaymentRequest(payment_id=pid, request_id="r1", amount=money(1, "EUR")), "amount.currency_code"),
        (pb.RefundPaymentRequest(payment_id=pid, request_id="r1", reason="r" * 501), "reason"),
        (pb.RefundPaymentRequest(payment_id=pid, request_id="r1", reason="bell\x07"), "reason"),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await shop.payments.RefundPayment(request, metadata=shop.seller)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert violated_fields(caught.value) == [field]
    assert await count_rows(payment_db, shop.tenant, "refunds") == 0
    assert await count_rows(payment_db, shop.tenant, "sandbox_operations", "kind = 'refund'") == 0


@pytest.mark.parametrize(("request_", "field"), [
    (pb.ListPaymentsRequest(page_size=-1), "page_size"),
    (pb.ListPaymentsRequest(page_token="garbage!"), "page_token"),
    (pb.ListPaymentsRequest(status=42), "status"),  # type: ignore[arg-type]
    (pb.ListPaymentsRequest(order_id="o" * 65), "order_id"),
    (pb.GetPaymentRequest(), "payment_id"),
])
async def test_bad_reads_name_the_field(shop: Shop, request_: Any, field: str) -> None:
    call = shop.payments.GetPayment if isinstance(request_, pb.GetPaymentRequest) else shop.payments.ListPayments
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request_, metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]


async def test_malformed_payment_id_is_simply_not_found(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.payments.GetPayment(pb.GetPaymentRequest(payment_id="'; DROP TABLE payments;--"),
                                       metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("request_", "field"), [
    (pb.HandleProviderWebhookRequest(tenant_id="t-1"), "provider"),
    (pb.HandleProviderWebhookRequest(provider="sandbox"), "tenant_id"),
])
async def test_bad_webhook_names_the_field(shop: Shop, request_: pb.HandleProviderWebhookRequest,
                                           field: str) -> None:
    request_.body.data = b"{}"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.payments.HandleProviderWebhook(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]


async def test_webhook_without_body_names_it(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.payments.HandleProviderWebhook(pb.HandleProviderWebhookRequest(provider="sandbox",
                                                                                  tenant_id=shop.tenant))
    assert violated_fields(caught.value) == ["body"]
