"""PaymentService and PaymentProcessingService over gRPC: request message in ->
use case -> response message out. Who may call each method is declared in the
proto and enforced by the interceptor."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from commerce.payment.v1 import payment_pb2 as pb
from commerce.payment.v1 import payment_pb2_grpc
from pydantic import SecretStr

from services.payment.convert import optional_money, payment_pb, refund_pb, status_name
from services.payment.domain import requests, webhook
from services.payment.domain.ids import requested_payment_id
from services.payment.domain.listing import payment_filter
from services.payment.domain.payment import Payment
from services.payment.payments import Payments, Refunded, Reply
from services.runtime.context import require_tenant
from services.runtime.errors import NotFound
from services.runtime.idempotency import IdempotencyKey, key_for
from services.runtime.validation import Violations

SERVICE = pb.DESCRIPTOR.services_by_name["PaymentService"]
PROCESSING = pb.DESCRIPTOR.services_by_name["PaymentProcessingService"]
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

AUTHORIZED: Reply[Payment, pb.AuthorizePaymentResponse] = Reply(
    pb.AuthorizePaymentResponse, lambda p: pb.AuthorizePaymentResponse(payment=payment_pb(p)))
CAPTURED: Reply[Payment, pb.CapturePaymentResponse] = Reply(
    pb.CapturePaymentResponse, lambda p: pb.CapturePaymentResponse(payment=payment_pb(p)))
VOIDED: Reply[Payment, pb.VoidPaymentResponse] = Reply(
    pb.VoidPaymentResponse, lambda p: pb.VoidPaymentResponse(payment=payment_pb(p)))
REFUNDED: Reply[Refunded, pb.RefundPaymentResponse] = Reply(
    pb.RefundPaymentResponse, lambda r: pb.RefundPaymentResponse(
        payment=payment_pb(r.payment), refund=refund_pb(r.refund, r.payment.currency_code)))


def _key(service: str, method: str, request: Any) -> IdempotencyKey:
    key = key_for(f"{service}/{method}", request)
    assert key is not None  # request_id was checked as required
    return key


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, payments: Payments, webhook_secrets: dict[str, SecretStr]) -> None:
        self._payments = payments
        self._secrets = webhook_secrets

    async def GetPayment(self, request: pb.GetPaymentRequest, context: Context) -> pb.GetPaymentResponse:
        _, tenant = require_tenant()
        found = await self._payments.get(tenant, requested_payment_id(request.payment_id))
        return pb.GetPaymentResponse(payment=payment_pb(found))

    async def ListPayments(self, request: pb.ListPaymentsRequest, context: Context) -> pb.ListPaymentsResponse:
        _, tenant = require_tenant()
        wanted = payment_filter(request.order_id, status_name(request.status))
        page, next_token = await self._payments.list_payments(tenant, wanted, request.page_size, request.page_token)
        return pb.ListPaymentsResponse(payments=[payment_pb(p) for p in page], next_page_token=next_token)

    async def RefundPayment(self, request: pb.RefundPaymentRequest, context: Context) -> pb.RefundPaymentResponse:
        _, tenant = require_tenant()
        cmd = requests.refund(request.request_id, request.payment_id, optional_money(request, "amount"),
                              request.reason)
        requested_payment_id(cmd.payment_id)
        return await self._payments.refund(tenant, cmd, _key(SERVICE.full_name, "RefundPayment", request), REFUNDED)

    async def HandleProviderWebhook(self, request: pb.HandleProviderWebhookRequest,
                                    context: Context) -> pb.HandleProviderWebhookResponse:
        v = Violations()
        if not request.provider:
            v.add("provider", "is required")
        if not request.tenant_id:
            v.add("tenant_id", "is required")
        if not request.HasField("body") or not request.body.data:
            v.add("body", "is required: the provider's request body")
        elif len(request.body.data) > webhook.BODY_MAX:
            v.add("body", f"must be at most {webhook.BODY_MAX} bytes")
        v.raise_if_any()
        secret = self._secrets.get(request.provider)
        if secret is None:
            raise NotFound("no such payment provider", reason="PROVIDER_NOT_FOUND",
                           metadata={"provider": request.provider[:64]})
        headers = {k: value for k, value in (context.invocation_metadata() or ()) if isinstance(value, str)}
        webhook.verify_signature(secret.get_secret_value(), request.body.data, headers.get(webhook.SIGNATURE_HEADER))
        event = webhook.parse_event(request.body.data)
        duplicate = await self._payments.apply_provider_event(request.tenant_id, request.provider, event)
        return pb.HandleProviderWebhookResponse(event_id=event.event_id, duplicate=duplicate)


class PaymentProcessingServicer(payment_pb2_grpc.PaymentProcessingServiceServicer):
    def __init__(self, payments: Payments) -> None:
        self._payments = payments

    async def ChargePayment(self, request: pb.ChargePaymentRequest, context: Context) -> pb.ChargePaymentResponse:
        _, tenant = require_tenant()
        cmd = requests.authorize(request.request_id, request.order_id, optional_money(request, "amount"),
                                 request.payment_token, request.provider)
        return pb.ChargePaymentResponse(payment=payment_pb(await self._payments.charge(tenant, cmd)))

    async def AuthorizePayment(self, request: pb.AuthorizePaymentRequest,
                               context: Context) -> pb.AuthorizePaymentResponse:
        _, tenant = require_tenant()
        cmd = requests.authorize(request.request_id, request.order_id, optional_money(request, "amount"),
                                 request.payment_token, request.provider)
        return await self._payments.authorize(tenant, cmd, _key(PROCESSING.full_name, "AuthorizePayment", request),
                                              AUTHORIZED)

    async def CapturePayment(self, request: pb.CapturePaymentRequest, context: Context) -> pb.CapturePaymentResponse:
        _, tenant = require_tenant()
        cmd = requests.capture(request.request_id, request.payment_id, request.order_id,
                               optional_money(request, "amount"))
        requested_payment_id(cmd.payment_id)
        return await self._payments.capture(tenant, cmd, _key(PROCESSING.full_name, "CapturePayment", request),
                                            CAPTURED)

    async def VoidPayment(self, request: pb.VoidPaymentRequest, context: Context) -> pb.VoidPaymentResponse:
        _, tenant = require_tenant()
        cmd = requests.void(request.request_id, request.payment_id, request.order_id)
        requested_payment_id(cmd.payment_id)
        return await self._payments.void(tenant, cmd, _key(PROCESSING.full_name, "VoidPayment", request), VOIDED)
