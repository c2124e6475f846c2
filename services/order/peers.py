"""The services the order service calls: the cart (with the customer's own token),
inventory and payment (with a service token for the tenant), each with a deadline.

A remote failure becomes ``RemoteError``: ``retryable`` when the outcome is not
known (deadline, unreachable, ...), so the saga retries the call with the same
idempotency key instead of treating it as a refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import grpc
from commerce.cart.v1 import cart_pb2, cart_pb2_grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc, inventory_pb2, inventory_pb2_grpc
from commerce.common.v1 import money_pb2
from commerce.payment.v1 import payment_pb2, payment_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

from services.order.domain.order import OrderLine
from services.runtime.channels import internal_channel
from services.runtime.errors import Unavailable

Metadata = Sequence[tuple[str, str]]
ServiceMetadata = Callable[[str], Awaitable[Metadata]]
T = TypeVar("T")

RETRYABLE = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                       grpc.StatusCode.CANCELLED})


class RemoteError(Exception):
    def __init__(self, method: str, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(f"{method}: {code.name} {reason}: {message}")
        self.code = code
        self.reason = reason

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE


def _reason(error: grpc.aio.AioRpcError) -> str:
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if raw is None:
        return ""
    status = status_pb2.Status.FromString(raw if isinstance(raw, bytes) else raw.encode())
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            return str(info.reason)
    return ""


class Peers:
    def __init__(self, channels: dict[str, grpc.aio.Channel], service_metadata: ServiceMetadata,
                 deadline_seconds: float = 5.0) -> None:
        self._channels = channels
        self._service_metadata = service_metadata
        self.deadline = deadline_seconds
        self._cart = cart_pb2_grpc.CartServiceStub(channels["cart"])
        self._catalog = catalog_pb2_grpc.CatalogServiceStub(channels["catalog"])
        self._inventory = inventory_pb2_grpc.InventoryServiceStub(channels["catalog"])
        self._processing = payment_pb2_grpc.PaymentProcessingServiceStub(channels["payment"])
        self._payments = payment_pb2_grpc.PaymentServiceStub(channels["payment"])

    @classmethod
    def connect(cls, addresses: dict[str, str], service_metadata: ServiceMetadata,
                deadline_seconds: float = 5.0) -> Peers:
        channels = {name: internal_channel(address) for name, address in addresses.items()}
        return cls(channels, service_metadata, deadline_seconds)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def _call(self, method: str, call: Callable[..., Awaitable[T]], request: Any, metadata: Metadata) -> T:
        try:
            return await call(request, metadata=tuple(metadata), timeout=self.deadline)
        except grpc.aio.AioRpcError as error:
            raise RemoteError(method, error.code(), _reason(error), error.details() or "") from error
        except TimeoutError as error:
            raise RemoteError(method, grpc.StatusCode.DEADLINE_EXCEEDED, "", "timed out") from error

    async def _service(self, tenant_id: str) -> Metadata:
        return await self._service_metadata(tenant_id)

    # --- cart and catalog (checkout's inputs) -------------------------------------------

    async def cart(self, customer_token: str) -> cart_pb2.Cart:
        try:
            reply = await self._call("GetCart", self._cart.GetCart, cart_pb2.GetCartRequest(),
                                     [("authorization", f"Bearer {customer_token}")])
        except RemoteError as error:
            raise Unavailable("the cart could not be read; retry with the same request_id",
                              reason="CART_UNAVAILABLE") from error
        cart: cart_pb2.Cart = reply.cart
        return cart

    # --- inventory ------------------------------------------------------------------------

    async def reserve(self, tenant_id: str, order_id: str, lines: Sequence[OrderLine]) -> inventory_pb2.Reservation:
        """The order's reservation (its id is the order id): new, or as it is when it existed."""
        request = inventory_pb2.ReserveStockRequest(reservation_id=order_id, lines=[
            inventory_pb2.ReservationLine(product_id=line.product_id, quantity=line.quantity) for line in lines])
        reply = await self._call("ReserveStock", self._inventory.ReserveStock, request,
                                 await self._service(tenant_id))
        reservation: inventory_pb2.Reservation = reply.reservation
        return reservation

    async def release(self, tenant_id: str, order_id: str) -> None:
        await self._call("ReleaseReservation", self._inventory.ReleaseReservation,
                         inventory_pb2.ReleaseReservationRequest(reservation_id=order_id),
                         await self._service(tenant_id))

    async def restock(self, tenant_id: str, product_id: str, units: int, request_id: str) -> None:
        await self._call("AdjustStock", self._catalog.AdjustStock,
                         catalog_pb2.AdjustStockRequest(product_id=product_id, delta=units, request_id=request_id),
                         await self._service(tenant_id))

    # --- payment --------------------------------------------------------------------------

    async def charge(self, tenant_id: str, order_id: str, amount: money_pb2.Money, token: str,
                     request_id: str) -> payment_pb2.Payment:
        """Authorize and capture at once: CAPTURED, or DECLINED / FAILED (nothing charged)."""
        reply = await self._call("ChargePayment", self._processing.ChargePayment,
                                 payment_pb2.ChargePaymentRequest(request_id=request_id, order_id=order_id,
                                                                  amount=amount, payment_token=token),
                                 await self._service(tenant_id))
        payment: payment_pb2.Payment = reply.payment
        return payment

    async def capture(self, tenant_id: str, order_id: str, payment_id: str, request_id: str) -> payment_pb2.Payment:
        reply = await self._call("CapturePayment", self._processing.CapturePayment,
                                 payment_pb2.CapturePaymentRequest(request_id=request_id, payment_id=payment_id,
                                                                   order_id=order_id),
                                 await self._service(tenant_id))
        payment: payment_pb2.Payment = reply.payment
        return payment

    async def void(self, tenant_id: str, order_id: str, payment_id: str, request_id: str) -> payment_pb2.Payment:
        reply = await self._call("VoidPayment", self._processing.VoidPayment,
                                 payment_pb2.VoidPaymentRequest(request_id=request_id, payment_id=payment_id,
                                                                order_id=order_id),
                                 await self._service(tenant_id))
        payment: payment_pb2.Payment = reply.payment
        return payment

    async def refund(self, tenant_id: str, payment_id: str, amount: money_pb2.Money | None, reason: str,
                     request_id: str) -> payment_pb2.RefundPaymentResponse:
        request = payment_pb2.RefundPaymentRequest(payment_id=payment_id, reason=reason, request_id=request_id)
        if amount is not None:
            request.amount.CopyFrom(amount)
        reply: payment_pb2.RefundPaymentResponse = await self._call(
            "RefundPayment", self._payments.RefundPayment, request, await self._service(tenant_id))
        return reply

    async def payments_of(self, tenant_id: str, order_id: str) -> list[payment_pb2.Payment]:
        reply = await self._call("ListPayments", self._payments.ListPayments,
                                 payment_pb2.ListPaymentsRequest(order_id=order_id, page_size=100),
                                 await self._service(tenant_id))
        return list(reply.payments)
