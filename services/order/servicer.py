"""OrderService over gRPC: request message in -> use case -> response message out.
Who may call each method is declared in the proto and enforced by the interceptor.

PlaceOrder answers the order (CONFIRMED, or still in progress if a service is
slow); a checkout that failed is FAILED_PRECONDITION with the order's
failure_reason as ErrorInfo reason (OUT_OF_STOCK, PAYMENT_DECLINED, ...) and
its id in the ErrorInfo metadata "order_id" — a retry with the same request_id
answers the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from commerce.order.v1 import order_pb2 as pb
from commerce.order.v1 import order_pb2_grpc
from google.protobuf.message import Message

from services.order.convert import address_of, order_pb, return_lines, status_name
from services.order.domain import validation
from services.order.domain.ids import requested_order_id
from services.order.domain.status import WATCH_ENDS
from services.order.orders import Orders
from services.order.watch import ChangeFeed
from services.runtime.context import require_tenant
from services.runtime.idempotency import IdempotencyKey, key_for

SERVICE = pb.DESCRIPTOR.services_by_name["OrderService"]
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
WATCH_LIMIT_SECONDS = 600.0
_POLL_WHEN_OFFLINE = 1.0


def _key(method: str, request: Message) -> IdempotencyKey | None:
    """The call's idempotency key (lifecycle request_ids are optional), scoped to the order."""
    return key_for(f"{SERVICE.full_name}/{method}", request)


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: Orders, feed: ChangeFeed, watch_limit_seconds: float = WATCH_LIMIT_SECONDS) -> None:
        self._orders = orders
        self._feed = feed
        self._watch_limit = watch_limit_seconds

    async def PlaceOrder(self, request: pb.PlaceOrderRequest, context: Context) -> pb.PlaceOrderResponse:
        caller, tenant = require_tenant()
        checkout = validation.checkout(request.request_id, address_of(request), request.payment_token, request.email)
        return pb.PlaceOrderResponse(order=order_pb(await self._orders.place(caller, tenant, checkout)))

    async def GetOrder(self, request: pb.GetOrderRequest, context: Context) -> pb.GetOrderResponse:
        caller, tenant = require_tenant()
        return pb.GetOrderResponse(order=order_pb(await self._orders.get(caller, tenant,
                                                                         requested_order_id(request.order_id))))

    async def ListOrders(self, request: pb.ListOrdersRequest, context: Context) -> pb.ListOrdersResponse:
        caller, tenant = require_tenant()
        page, token = await self._orders.list_orders(caller, tenant, request.page_size, request.page_token,
                                              status_name(request.status), request.customer_id)
        return pb.ListOrdersResponse(orders=[order_pb(o) for o in page], next_page_token=token)

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: Context) -> pb.CancelOrderResponse:
        caller, tenant = require_tenant()
        order_id = requested_order_id(request.order_id)
        reason = validation.cancel_reason(request.reason, request.request_id)
        return pb.CancelOrderResponse(order=order_pb(await self._orders.cancel(caller, tenant, order_id, reason,
                                                                                _key("CancelOrder", request))))

    async def MarkOrderShipped(self, request: pb.MarkOrderShippedRequest,
                               context: Context) -> pb.MarkOrderShippedResponse:
        caller, tenant = require_tenant()
        order_id = requested_order_id(request.order_id)
        validation.shipment(request.carrier, request.tracking_number, request.request_id)
        order = await self._orders.ship(caller, tenant, order_id, request.carrier, request.tracking_number,
                                        _key("MarkOrderShipped", request))
        return pb.MarkOrderShippedResponse(order=order_pb(order))

    async def MarkOrderDelivered(self, request: pb.MarkOrderDeliveredRequest,
                                 context: Context) -> pb.MarkOrderDeliveredResponse:
        caller, tenant = require_tenant()
        order_id = requested_order_id(request.order_id)
        validation.optional_request_id(request.request_id)
        return pb.MarkOrderDeliveredResponse(order=order_pb(await self._orders.deliver(
            caller, tenant, order_id, _key("MarkOrderDelivered", request))))

    async def RequestReturn(self, request: pb.RequestReturnRequest, context: Context) -> pb.RequestReturnResponse:
        caller, tenant = require_tenant()
        order_id = requested_order_id(request.order_id)
        order = await self._orders.request_return(caller, tenant, order_id, request.reason, return_lines(request),
                                                  request.request_id, _key("RequestReturn", request))
        return pb.RequestReturnResponse(order=order_pb(order))

    async def ReceiveReturn(self, request: pb.ReceiveReturnRequest, context: Context) -> pb.ReceiveReturnResponse:
        caller, tenant = require_tenant()
        order_id = requested_order_id(request.order_id)
        validation.optional_request_id(request.request_id)
        return pb.ReceiveReturnResponse(order=order_pb(await self._orders.receive_return(
            caller, tenant, order_id, _key("ReceiveReturn", request))))

    async def WatchOrder(self, request: pb.WatchOrderRequest, context: Context) -> AsyncIterator[pb.WatchOrderResponse]:
        caller, tenant = require_tenant()
        order_id = requested_order_id(request.order_id)
        loop = asyncio.get_running_loop()
        ends = loop.time() + self._watch_limit
        async with self._feed.subscribe(tenant, order_id) as changed:
            last = None
            while True:
                changed.clear()
                order = await self._orders.get(caller, tenant, order_id)
                if last is None or order.update_time != last:
                    last = order.update_time
                    yield pb.WatchOrderResponse(order=order_pb(order))
                if order.status in WATCH_ENDS or loop.time() >= ends:
                    return
                wait = min(ends - loop.time(), self._watch_limit if self._feed.online else _POLL_WHEN_OFFLINE)
                try:
                    await asyncio.wait_for(changed.wait(), max(wait, 0.01))
                except TimeoutError:
                    pass
