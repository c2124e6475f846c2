"""CartService over gRPC: request message in -> use case -> response message out.
Who may call each method (customers and guests) is declared in the proto and
enforced by the interceptor; the cart is always the caller's own."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from commerce.cart.v1 import cart_pb2 as pb
from commerce.cart.v1 import cart_pb2_grpc

from services.cart.carts import Carts, Reply
from services.cart.convert import cart_pb
from services.cart.domain.ids import requested_product_id
from services.cart.domain.requests import requested_quantity
from services.runtime.context import Caller, require_tenant
from services.runtime.idempotency import key_for

SERVICE = pb.DESCRIPTOR.services_by_name["CartService"]
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

ADDED = Reply(pb.AddCartItemResponse, lambda c: pb.AddCartItemResponse(cart=cart_pb(c)))
UPDATED = Reply(pb.UpdateCartItemResponse, lambda c: pb.UpdateCartItemResponse(cart=cart_pb(c)))
REMOVED = Reply(pb.RemoveCartItemResponse, lambda c: pb.RemoveCartItemResponse(cart=cart_pb(c)))
CLEARED = Reply(pb.ClearCartResponse, lambda c: pb.ClearCartResponse(cart=cart_pb(c)))


def _method(name: str) -> str:
    return f"{SERVICE.full_name}/{name}"


def _shopper() -> Caller:
    caller, _ = require_tenant()
    return caller


class CartServicer(cart_pb2_grpc.CartServiceServicer):
    def __init__(self, carts: Carts) -> None:
        self._carts = carts

    async def GetCart(self, request: pb.GetCartRequest, context: Context) -> pb.GetCartResponse:
        return pb.GetCartResponse(cart=cart_pb(await self._carts.get(_shopper())))

    async def AddCartItem(self, request: pb.AddCartItemRequest, context: Context) -> pb.AddCartItemResponse:
        caller = _shopper()
        product_id = requested_product_id(request.product_id)
        quantity = requested_quantity(request.quantity)
        key = key_for(_method("AddCartItem"), request)
        return await self._carts.add(caller, product_id, quantity, key, ADDED)

    async def UpdateCartItem(self, request: pb.UpdateCartItemRequest, context: Context) -> pb.UpdateCartItemResponse:
        caller = _shopper()
        product_id = requested_product_id(request.product_id)
        quantity = requested_quantity(request.quantity)
        key = key_for(_method("UpdateCartItem"), request)
        return await self._carts.update(caller, product_id, quantity, key, UPDATED)

    async def RemoveCartItem(self, request: pb.RemoveCartItemRequest, context: Context) -> pb.RemoveCartItemResponse:
        caller = _shopper()
        product_id = requested_product_id(request.product_id)
        key = key_for(_method("RemoveCartItem"), request)
        return await self._carts.remove(caller, product_id, key, REMOVED)

    async def ClearCart(self, request: pb.ClearCartRequest, context: Context) -> pb.ClearCartResponse:
        return await self._carts.clear(_shopper(), key_for(_method("ClearCart"), request), CLEARED)
