"""The cart's use cases. Each change runs in one tenant transaction with the
shopper's cart row locked; the answer is the cart priced from the catalog, and
is remembered under the request_id (AIP-155) in that same transaction.

request_ids are scoped to the shopper: two shoppers may pick the same one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Generic, Protocol, TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart.domain import cart as rules
from services.cart.domain.cart import StoredCart
from services.cart.domain.catalog import Product, check_stock, sellable
from services.cart.domain.pricing import PricedCart, priced
from services.cart.store import carts as store
from services.runtime.context import Caller
from services.runtime.db import Database
from services.runtime.idempotency import IdempotencyKey, remember, replay

M = TypeVar("M", bound=Message)


class ProductSource(Protocol):
    async def product(self, token: str, product_id: str) -> Product | None: ...

    async def products(self, token: str, product_ids: Iterable[str]) -> Mapping[str, Product | None]: ...

    async def available(self, token: str, product_id: str) -> int: ...


@dataclass(frozen=True)
class Reply(Generic[M]):
    type: type[M]
    render: Callable[[PricedCart], M]


Change = Callable[[AsyncConnection, StoredCart | None, dict[str, Product | None]], Awaitable[StoredCart | None]]


class Carts:
    def __init__(self, db: Database, catalog: ProductSource) -> None:
        self._db = db
        self._catalog = catalog

    async def get(self, caller: Caller) -> PricedCart:
        async with self._db.tenant_read(caller.tenant_id) as conn:
            found = await store.load(conn, caller.subject)
        return await self._priced(caller, found, {})

    async def add(self, caller: Caller, product_id: str, quantity: int, key: IdempotencyKey | None,
                  reply: Reply[M]) -> M:
        async def change(conn: AsyncConnection, current: StoredCart | None,
                         known: dict[str, Product | None]) -> StoredCart:
            product, available = await asyncio.gather(self._catalog.product(caller.token, product_id),
                                                      self._catalog.available(caller.token, product_id))
            cart = current or await store.load_or_create(conn, caller.subject)
            sellable(product_id, product, cart.currency_code)
            assert product is not None
            wanted = rules.quantity_after_adding(cart, product_id, quantity)
            check_stock(product_id, wanted, available)
            known[product_id] = product
            after = cart.with_line(product_id, wanted)
            return await store.save(conn, cart, replace(after, currency_code=product.price.currency_code))

        return await self._change(caller, key, reply, change)

    async def update(self, caller: Caller, product_id: str, quantity: int, key: IdempotencyKey | None,
                     reply: Reply[M]) -> M:
        async def change(conn: AsyncConnection, cart: StoredCart | None,
                         known: dict[str, Product | None]) -> StoredCart:
            line = rules.existing_line(cart, product_id)
            assert cart is not None
            if quantity > line.quantity:  # raising is checked like adding; lowering always works
                product, available = await asyncio.gather(self._catalog.product(caller.token, product_id),
                                                          self._catalog.available(caller.token, product_id))
                known[product_id] = sellable(product_id, product, cart.currency_code)
                check_stock(product_id, quantity, available)
            return await store.save(conn, cart, cart.with_line(product_id, quantity))

        return await self._change(caller, key, reply, change)

    async def remove(self, caller: Caller, product_id: str, key: IdempotencyKey | None, reply: Reply[M]) -> M:
        async def change(conn: AsyncConnection, cart: StoredCart | None, _: dict[str, Product | None]) -> StoredCart:
            rules.existing_line(cart, product_id)
            assert cart is not None
            return await store.save(conn, cart, cart.without({product_id}))

        return await self._change(caller, key, reply, change)

    async def clear(self, caller: Caller, key: IdempotencyKey | None, reply: Reply[M]) -> M:
        async def change(conn: AsyncConnection, cart: StoredCart | None,
                         _: dict[str, Product | None]) -> StoredCart | None:
            if cart is None or not cart.lines:
                return cart
            return await store.save(conn, cart, cart.without({line.product_id for line in cart.lines}))

        return await self._change(caller, key, reply, change)

    async def _change(self, caller: Caller, key: IdempotencyKey | None, reply: Reply[M], change: Change) -> M:
        key = None if key is None else replace(key, request_id=f"{caller.subject}/{key.request_id}")
        known: dict[str, Product | None] = {}
        async with self._db.tenant(caller.tenant_id) as conn:
            previous = await replay(conn, key, reply.type)
            if previous is not None:
                return previous
            current = await store.load(conn, caller.subject, for_update=True)
            after = await change(conn, current, known)
            response = reply.render(await self._priced(caller, after, known))
            await remember(conn, key, response)
        return response

    async def _priced(self, caller: Caller, cart: StoredCart | None, known: dict[str, Product | None]) -> PricedCart:
        if cart is None:
            return priced(caller.subject, None, {})
        missing = [line.product_id for line in cart.lines if line.product_id not in known]
        products = {**known, **(await self._catalog.products(caller.token, missing))} if missing else known
        return priced(caller.subject, cart, products)
