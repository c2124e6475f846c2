"""Reads products and stock from the catalog service over gRPC, as the shopper:
each call forwards the caller's own bearer token, so the catalog shows exactly
what that shopper may see. One long-lived channel per process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc

from services.cart.convert import product_of
from services.cart.domain.catalog import Product
from services.runtime.channels import internal_channel
from services.runtime.errors import DomainError, PermissionDenied, Unauthenticated, Unavailable

CALL_TIMEOUT_SECONDS = 3.0


def _failure(error: grpc.aio.AioRpcError) -> DomainError:
    code = error.code()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(f"the catalog refused the token: {error.details()}", reason="TOKEN_REFUSED")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return PermissionDenied(f"the catalog refused the call: {error.details()}", reason="CATALOG_DENIED")
    return Unavailable(f"the catalog could not be read ({code.name}); retry shortly",
                       reason="CATALOG_UNAVAILABLE")


class CatalogClient:
    def __init__(self, address: str) -> None:
        self._channel = internal_channel(address)
        self._stub = catalog_pb2_grpc.CatalogServiceStub(self._channel)

    @staticmethod
    def _metadata(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),)

    async def product(self, token: str, product_id: str) -> Product | None:
        """The product as this shopper sees it; None when it does not exist for them."""
        try:
            reply = await self._stub.GetProduct(pb.GetProductRequest(product_id=product_id),
                                                metadata=self._metadata(token), timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _failure(error) from error
        return product_of(reply.product)

    async def products(self, token: str, product_ids: Iterable[str]) -> dict[str, Product | None]:
        """Several products, fetched concurrently."""
        ids = list(dict.fromkeys(product_ids))
        found = await asyncio.gather(*(self.product(token, pid) for pid in ids))
        return dict(zip(ids, found, strict=True))

    async def available(self, token: str, product_id: str) -> int | None:
        """Units that can be sold right now; None when the product does not exist for this shopper."""
        try:
            reply = await self._stub.GetStock(pb.GetStockRequest(product_id=product_id),
                                              metadata=self._metadata(token), timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise _failure(error) from error
        return int(reply.stock.available)

    async def close(self) -> None:
        await self._channel.close()
