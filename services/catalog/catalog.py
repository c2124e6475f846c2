"""The catalog's use cases: each read or write in one tenant transaction.

Writes are idempotent by request_id (AIP-155): the answer is remembered, as the
response message, in the same transaction as the change. ``Reply`` says how a
result becomes that response, so this layer needs no gRPC.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog import events
from services.catalog.cache import ProductCache, SearchCache
from services.catalog.domain import product, stock
from services.catalog.domain.ids import new_product_id, product_not_found
from services.catalog.domain.product import Product, ProductFields, ProductInput
from services.catalog.domain.reservation import crossed_low_stock
from services.catalog.domain.stock import StockLevel
from services.catalog.domain.visibility import check_visible
from services.catalog.store import products as product_store
from services.catalog.store import stock as stock_store
from services.runtime.context import Caller
from services.runtime.db import Database
from services.runtime.idempotency import IdempotencyKey, remember, replay

T = TypeVar("T")
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Reply(Generic[T, M]):
    type: type[M]
    render: Callable[[T], M]


class Catalog:
    def __init__(self, db: Database, cache: ProductCache, searches: SearchCache) -> None:
        self._db = db
        self._cache = cache
        self._searches = searches

    # --- reads -----------------------------------------------------------------------

    async def get_product(self, caller: Caller, tenant_id: str, product_id: str) -> Product:
        found = self._cache.get(tenant_id, product_id) if self._cache.online else None
        if found is None:
            generation = self._cache.generation
            async with self._db.session(tenant_id) as session:
                found = await product_store.read(session, product_id)
            if found is None:
                raise product_not_found(product_id)
            self._cache.put(tenant_id, found, generation)
        check_visible(caller, product_id, found.status)
        return found

    async def get_stock(self, caller: Caller, tenant_id: str, product_id: str) -> StockLevel:
        """One statement: the stock with the product's status (same visibility as the product)."""
        async with self._db.session(tenant_id) as session:
            found = await stock_store.read(session, product_id)
        if found is None:
            raise product_not_found(product_id)
        level, status = found
        check_visible(caller, product_id, status)
        return level

    # --- writes ----------------------------------------------------------------------

    async def create_product(self, tenant_id: str, fields: ProductFields, key: IdempotencyKey | None,
                             reply: Reply[Product, M]) -> M:
        async def work(conn: AsyncConnection) -> Product:
            created = await product_store.insert(conn, new_product_id(), fields)
            await stock_store.create(conn, created.product_id)
            await events.product_created(conn, tenant_id, created)
            return created

        return await self._write(tenant_id, None, key, reply, work, searched=True)

    async def update_product(self, tenant_id: str, product_id: str, given: ProductInput, paths: frozenset[str],
                             key: IdempotencyKey | None, reply: Reply[Product, M]) -> M:
        async def work(conn: AsyncConnection) -> Product:
            current = await self._locked_product(conn, product_id)
            changed = await product_store.update(conn, product_id, product.updated(current.fields, given, paths))
            await events.product_updated(conn, tenant_id, changed, paths)
            return changed

        return await self._write(tenant_id, product_id, key, reply, work, searched=True)

    async def archive_product(self, tenant_id: str, product_id: str, key: IdempotencyKey | None,
                              reply: Reply[Product, M]) -> M:
        async def work(conn: AsyncConnection) -> Product:
            current = await self._locked_product(conn, product_id)
            if current.status is product.ProductStatus.ARCHIVED:
                return current
            archived = await product_store.update(conn, product_id, product.archived(current.fields))
            await events.product_updated(conn, tenant_id, archived, frozenset({"status"}))
            return archived

        return await self._write(tenant_id, product_id, key, reply, work, searched=True)

    async def set_stock(self, tenant_id: str, product_id: str, on_hand: int, key: IdempotencyKey | None,
                        reply: Reply[StockLevel, M]) -> M:
        stock.checked_on_hand(on_hand)
        return await self._change_stock(tenant_id, product_id, lambda level: level.with_on_hand(on_hand), key, reply)

    async def adjust_stock(self, tenant_id: str, product_id: str, delta: int, key: IdempotencyKey | None,
                           reply: Reply[StockLevel, M]) -> M:
        stock.checked_delta(delta)
        return await self._change_stock(tenant_id, product_id, lambda level: level.adjusted(delta), key, reply)

    async def _change_stock(self, tenant_id: str, product_id: str, change: Callable[[StockLevel], StockLevel],
                            key: IdempotencyKey | None, reply: Reply[StockLevel, M]) -> M:
        async def work(conn: AsyncConnection) -> StockLevel:
            level = await stock_store.get(conn, product_id, for_update=True)
            if level is None:
                raise product_not_found(product_id)
            saved = await stock_store.save_on_hand(conn, change(level))
            if crossed_low_stock(level.available, saved.available):
                found = await product_store.get(conn, product_id)
                await events.low_stock(conn, tenant_id, product_id, found.fields.sku if found else "", saved.available)
            return saved

        return await self._write(tenant_id, None, key, reply, work)

    async def _locked_product(self, conn: AsyncConnection, product_id: str) -> Product:
        current = await product_store.get(conn, product_id, for_update=True)
        if current is None:
            raise product_not_found(product_id)
        return current

    async def _write(self, tenant_id: str, product_id: str | None, key: IdempotencyKey | None,
                     reply: Reply[T, M], work: Callable[[AsyncConnection], Awaitable[T]], *,
                     searched: bool = False) -> M:
        """``searched``: the change may alter search results (a product's fields)."""
        async with self._db.tenant(tenant_id) as conn:
            previous = await replay(conn, key, reply.type)
            if previous is not None:
                return previous
            response = reply.render(await work(conn))
            await remember(conn, key, response)
        if product_id is not None:  # this replica need not wait for its own notification
            self._cache.evict(tenant_id, product_id)
        if searched:
            self._searches.invalidate(tenant_id)
        return response
