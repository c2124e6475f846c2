"""The cart's use cases.

A read is one statement: the cart, its lines and the cart's copy of the catalog
(services/cart/catalog_copy.py). The catalog is asked only about a product the copy
does not know yet, and what it says is kept in the copy.

A change asks the catalog first, holding no lock and no transaction (AddCartItem, and
UpdateCartItem raising a quantity: the product from the copy, or GetProduct; the units
that can be sold from GetStock), then runs one short transaction: the cart row locked
and the answer stored under the request_id read in one statement, the rules of
services/cart/domain, then the changed lines and the answer written in one statement.
Should the locked cart need what was not asked (a line raised meanwhile, a product the
copy does not know), the transaction is rolled back, the catalog asked, and the change
tried again.

A retry with the same request_id returns the first answer (AIP-155), before the catalog
is asked. request_ids are scoped to the shopper: two shoppers may pick the same one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Generic, Protocol, TypeVar

from google.protobuf.message import Message

from services.cart.domain import changes
from services.cart.domain.cart import StoredCart
from services.cart.domain.catalog import Offer, Product, shown
from services.cart.domain.pricing import PricedCart, priced
from services.cart.store import carts as store
from services.cart.store import products as copy
from services.runtime.context import Caller
from services.runtime.db import Database
from services.runtime.errors import Aborted
from services.runtime.idempotency import IdempotencyKey, first_answer

M = TypeVar("M", bound=Message)
# Enough for a change that needs, after its first try, both an offer and unknown products.
ATTEMPTS = 3


class Catalog(Protocol):
    async def product(self, token: str, product_id: str) -> Product | None: ...

    async def products(self, token: str, product_ids: Iterable[str]) -> Mapping[str, Product | None]: ...

    async def available(self, token: str, product_id: str) -> int | None: ...


@dataclass(frozen=True)
class Reply(Generic[M]):
    type: type[M]
    render: Callable[[PricedCart], M]


Change = Callable[[StoredCart | None, Offer | None], StoredCart | None]


@dataclass(frozen=True)
class Look:
    """What a change asks the catalog before its transaction: the offer of ``product_id``
    when ``asks(quantity of its line, 0 without one)``. ``creates``: the shopper's cart
    is created if they have none."""

    product_id: str
    asks: Callable[[int], bool]
    creates: bool = False


@dataclass
class _Heard:
    """What one call heard from the catalog, kept across its attempts."""

    offer: Offer | None = None
    products: dict[str, Product | None] = field(default_factory=dict)


class _Unknown(Exception):
    """Lines whose product the copy does not know: ask the catalog, then try again."""

    def __init__(self, product_ids: list[str]) -> None:
        super().__init__(product_ids)
        self.product_ids = product_ids


class Carts:
    def __init__(self, db: Database, catalog: Catalog) -> None:
        self._db = db
        self._catalog = catalog

    async def get(self, caller: Caller) -> PricedCart:
        async with self._db.session(caller.tenant_id) as session:
            found = await store.read(session, caller.subject)
        products: dict[str, Product | None] = dict(found.products)
        unknown = _unknown(found.cart, products)
        if unknown:
            products.update(await self._learn(caller, unknown))
        return priced(caller.subject, found.cart, products)

    async def add(self, caller: Caller, product_id: str, quantity: int, key: IdempotencyKey | None,
                  reply: Reply[M]) -> M:
        def change(cart: StoredCart | None, offer: Offer | None) -> StoredCart:
            assert cart is not None  # created first
            if offer is None:
                raise changes.OfferNeeded(product_id)
            return changes.added(cart, product_id, quantity, offer)

        return await self._change(caller, key, reply, change, Look(product_id, lambda _: True, creates=True))

    async def update(self, caller: Caller, product_id: str, quantity: int, key: IdempotencyKey | None,
                     reply: Reply[M]) -> M:
        def change(cart: StoredCart | None, offer: Offer | None) -> StoredCart:
            return changes.updated(cart, product_id, quantity, offer)

        return await self._change(caller, key, reply, change,
                                  Look(product_id, lambda line: changes.raises(line, quantity)))

    async def remove(self, caller: Caller, product_id: str, key: IdempotencyKey | None, reply: Reply[M]) -> M:
        return await self._change(caller, key, reply, lambda cart, _: changes.removed(cart, product_id))

    async def clear(self, caller: Caller, key: IdempotencyKey | None, reply: Reply[M]) -> M:
        return await self._change(caller, key, reply, lambda cart, _: changes.cleared(cart))

    async def _change(self, caller: Caller, key: IdempotencyKey | None, reply: Reply[M], change: Change,
                      look: Look | None = None) -> M:
        key = None if key is None else replace(key, request_id=f"{caller.subject}/{key.request_id}")
        heard = _Heard()
        if look is not None:
            async with self._db.session(caller.tenant_id) as session:
                seen = await store.peek(session, caller.subject, look.product_id,
                                        None if key is None else key.request_id)
            if seen.answer is not None and key is not None:
                return _first(key, seen.answer, reply)
            if look.asks(seen.quantity):
                heard.offer = await self._offer(caller, look.product_id, seen.product)
        for _ in range(ATTEMPTS):
            try:
                return await self._apply(caller, key, reply, change, heard, look is not None and look.creates)
            except changes.OfferNeeded as need:
                heard.offer = await self._offer(caller, need.product_id, None)
            except _Unknown as unknown:
                heard.products.update(await self._learn(caller, unknown.product_ids))
        raise Aborted("the cart kept changing while this change was being made; retry", reason="CART_BUSY")

    async def _apply(self, caller: Caller, key: IdempotencyKey | None, reply: Reply[M], change: Change,
                     heard: _Heard, creates: bool) -> M:
        request_id = None if key is None else key.request_id
        async with self._db.transaction(caller.tenant_id) as session:
            locked = await store.lock(session, caller.subject, request_id)
            if locked.cart is None and locked.answer is None and creates:
                await store.create(session, caller.subject)
                locked = await store.lock(session, caller.subject, request_id)
            if locked.answer is not None and key is not None:
                return _first(key, locked.answer, reply)
            after = change(locked.cart, heard.offer)
            products = _newest(locked.products, heard)
            unknown = _unknown(after, products)
            if unknown:
                raise _Unknown(unknown)
            saved = None if after is None or after == locked.cart else replace(after, update_time=locked.now)
            response = reply.render(priced(caller.subject, saved or after, products))
            await store.write(session, locked.cart, saved, key, response.SerializeToString(deterministic=True))
        return response

    async def _offer(self, caller: Caller, product_id: str, known: Product | None) -> Offer:
        """What the catalog says of the product now: the copy's product when it shows it
        (else GetProduct, kept in the copy) and the units GetStock says can be sold. A
        product GetStock does not find does not exist for this shopper (any more)."""
        product = shown(known)
        if product is None:
            product, available = await asyncio.gather(self._catalog.product(caller.token, product_id),
                                                      self._catalog.available(caller.token, product_id))
            if product is not None:
                await self._keep(caller, [product])
        else:
            available = await self._catalog.available(caller.token, product_id)
        return Offer(None, 0) if available is None else Offer(product, available)

    async def _learn(self, caller: Caller, product_ids: list[str]) -> dict[str, Product | None]:
        """Products the copy does not know, as the catalog shows them to this shopper;
        those that exist are kept in the copy."""
        found = dict(await self._catalog.products(caller.token, product_ids))
        await self._keep(caller, [product for product in found.values() if product is not None])
        return found

    async def _keep(self, caller: Caller, products: list[Product]) -> None:
        if products:
            async with self._db.session(caller.tenant_id) as session:
                await copy.keep(session, products)


def _first(key: IdempotencyKey, answer: store.StoredAnswer, reply: Reply[M]) -> M:
    return first_answer(key, answer.method, answer.fingerprint, answer.response, reply.type)


def _unknown(cart: StoredCart | None, products: Mapping[str, Product | None]) -> list[str]:
    return [] if cart is None else [line.product_id for line in cart.lines if line.product_id not in products]


def _newest(known: Mapping[str, Product], heard: _Heard) -> dict[str, Product | None]:
    """The copy's products and what the catalog said during this call, the newest of each
    (what the catalog did not find stays unknown unless the copy has it)."""
    products: dict[str, Product | None] = {**heard.products, **known}
    offered = heard.offer.product if heard.offer is not None else None
    for product in (*(p for p in heard.products.values() if p is not None), *([offered] if offered else [])):
        current = products.get(product.product_id)
        if current is None or current.version < product.version:
            products[product.product_id] = product
    return products
