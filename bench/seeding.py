"""Seeding for PlaceOrder: products with large stock, and guests each with one cart line
(a guest token, then one AddCartItem), many at once over public RPCs, before any measured
window. ``Carts`` hands each guest out once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from commerce.cart.v1 import cart_pb2, cart_pb2_grpc
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from commerce.common.v1 import money_pb2
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc

from bench.harness import BenchError, Harness

PRODUCTS = 20
INITIAL_STOCK = 100_000_000
CONCURRENCY = 96  # guests seeded at once


@dataclass(frozen=True)
class Product:
    product_id: str
    on_hand: int  # stock set when seeded


async def seed_products(harness: Harness, count: int = PRODUCTS) -> list[Product]:
    async with grpc.aio.insecure_channel(harness.mesh.address_of("catalog")) as channel:
        catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        found = []
        for n in range(count):
            product = (await catalog.CreateProduct(catalog_pb2.CreateProductRequest(product=catalog_pb2.Product(
                sku=f"ORDER-BENCH-{n:03d}", title=f"Order bench item {n}", category="bench",
                price=money_pb2.Money(currency_code="USD", amount_minor=1000 + n)),
                request_id=f"bench-order-product-{n}"), metadata=harness.shop.metadata, timeout=10)).product
            await catalog.SetStock(catalog_pb2.SetStockRequest(product_id=product.product_id, on_hand=INITIAL_STOCK,
                                                               request_id=f"bench-order-stock-{n}"),
                                   metadata=harness.shop.metadata, timeout=10)
            found.append(Product(str(product.product_id), INITIAL_STOCK))
        return found


@dataclass
class Carts:
    """Guest tokens whose cart holds one line, each given out once."""

    tokens: list[str] = field(default_factory=list)
    seeded_seconds: float = 0.0
    _next: int = 0

    @property
    def left(self) -> int:
        return len(self.tokens) - self._next

    def take(self, count: int | None = None) -> Iterator[str]:
        """Up to ``count`` guests not given out yet (no limit when None), one at a time: those a
        run leaves stay for the next."""
        given = 0
        while self._next < len(self.tokens) and (count is None or given < count):
            self._next += 1
            given += 1
            yield self.tokens[self._next - 1]

    async def seed(self, harness: Harness, products: list[Product], count: int) -> int:
        """Adds ``count`` guests with a cart line (CONCURRENCY calls in flight); returns how many."""
        started = time.monotonic()
        failures: list[BaseException] = []
        async with grpc.aio.insecure_channel(harness.mesh.address_of("tenant")) as tenant_channel, \
                grpc.aio.insecure_channel(harness.mesh.address_of("cart")) as cart_channel:
            tenants = tenant_pb2_grpc.TenantServiceStub(tenant_channel)
            carts = cart_pb2_grpc.CartServiceStub(cart_channel)
            numbers = iter(range(len(self.tokens), len(self.tokens) + count))

            async def worker() -> None:
                for n in numbers:
                    try:
                        token = (await tenants.CreateGuestToken(tenant_pb2.CreateGuestTokenRequest(
                            tenant_id=harness.shop.tenant_id), timeout=30)).access_token
                        await carts.AddCartItem(cart_pb2.AddCartItemRequest(
                            product_id=products[n % len(products)].product_id, quantity=1),
                            metadata=(("authorization", f"Bearer {token}"),), timeout=30)
                    except grpc.aio.AioRpcError as error:
                        failures.append(error)
                        if len(failures) > 10:
                            return
                        continue
                    self.tokens.append(token)

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        self.seeded_seconds += time.monotonic() - started
        if len(failures) > 10:
            raise BenchError(f"seeding carts failed {len(failures)} times, e.g. {failures[0]}")
        return count - len(failures)
