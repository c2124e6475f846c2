"""The per-process caches (products, and search answers): two catalog replicas on one
database; a replica serves a product, or a search, older than the last committed write
only until that write's change notice (NOTIFY, delivered after the commit, in
milliseconds) reaches it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc
from commerce.common.v1 import money_pb2
from google.protobuf import field_mask_pb2
from sqlalchemy import text

from services.runtime.db import Database, schema_for
from services.runtime.server import Running
from services.runtime.settings import Settings
from tests.catalog.conftest import Shop
from tests.catalog.harness import start_catalog
from tests.tokens import TestKeys

T = TypeVar("T")


@pytest.fixture
async def replica(catalog_settings: Settings, keys: TestKeys) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceStub]:
    """A second catalog server on the same database, with its own cache."""
    running: Running
    running, _ = await start_catalog(catalog_settings, keys)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield catalog_pb2_grpc.CatalogServiceStub(channel)
    await running.stop(0)


async def _behind_the_back(db: Database, tenant: str, product_id: str, title: str) -> None:
    """Changes the row without going through the service (so without any NOTIFY)."""
    async with db.engine.begin() as conn:
        await conn.execute(text(f'UPDATE "{schema_for(tenant)}".products SET title = :t WHERE product_id = :p'),
                           {"t": title, "p": product_id})


async def _title(stub: catalog_pb2_grpc.CatalogServiceStub, shop: Shop, product_id: str) -> str:
    reply = await stub.GetProduct(pb.GetProductRequest(product_id=product_id), metadata=shop.customer)
    title: str = reply.product.title
    return title


async def _until_cached(read: Callable[[], Awaitable[T]], change_behind: Callable[[int], Awaitable[None]],
                        what: str) -> T:
    """Reads until a change made behind the service's back stops showing: the replica's
    cache is then online and holds the answer. Returns the cached answer."""
    for attempt in range(100):
        cached = await read()
        await change_behind(attempt)
        if await read() == cached:
            return cached
        await asyncio.sleep(0.05)
    raise AssertionError(f"the replica never served {what} from its cache")


async def _until_served_from_cache(stub: catalog_pb2_grpc.CatalogServiceStub, shop: Shop, db: Database,
                                   product_id: str) -> str:
    """The product's cached title, once the replica serves it from its cache."""
    return await _until_cached(lambda: _title(stub, shop, product_id),
                               lambda n: _behind_the_back(db, shop.tenant, product_id, f"behind {n}"), "a product")


async def _soon(check: Callable[[], Awaitable[bool]], within: float = 2.0) -> bool:
    """True once ``check`` is (the change notice has reached the replica), False after ``within``."""
    for _ in range(int(within / 0.02)):
        if await check():
            return True
        await asyncio.sleep(0.02)
    return await check()


async def test_update_through_one_replica_is_seen_through_another_once_its_notice_arrives(
        shop: Shop, replica: catalog_pb2_grpc.CatalogServiceStub, catalog_db: Database) -> None:
    pid = (await shop.create(title="Original")).product_id
    await _until_served_from_cache(replica, shop, catalog_db, pid)

    for round_ in range(5):
        await shop.stub.UpdateProduct(pb.UpdateProductRequest(
            product=pb.Product(product_id=pid, title=f"Renamed {round_}"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"])), metadata=shop.seller)
        async def renamed(round_: int = round_) -> bool:
            return await _title(replica, shop, pid) == f"Renamed {round_}"
        assert await _soon(renamed)


async def test_product_turned_draft_through_one_replica_is_gone_for_shoppers_of_another(
        shop: Shop, replica: catalog_pb2_grpc.CatalogServiceStub, catalog_db: Database) -> None:
    pid = (await shop.create("DRAFTED")).product_id
    await _until_served_from_cache(replica, shop, catalog_db, pid)
    await shop.stub.UpdateProduct(pb.UpdateProductRequest(
        product=pb.Product(product_id=pid, status=pb.PRODUCT_STATUS_DRAFT),
        update_mask=field_mask_pb2.FieldMask(paths=["status"])), metadata=shop.seller)

    async def gone() -> bool:
        try:
            await replica.GetProduct(pb.GetProductRequest(product_id=pid), metadata=shop.customer)
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
            return True
        return False
    assert await _soon(gone)


async def test_reads_bypass_the_cache_while_its_listener_is_disconnected(
        shop: Shop, replica: catalog_pb2_grpc.CatalogServiceStub, catalog_db: Database) -> None:
    pid = (await shop.create(title="Original")).product_id
    await _until_served_from_cache(replica, shop, catalog_db, pid)

    async with catalog_db.engine.begin() as conn:  # every replica's listener connection drops
        await conn.execute(text("SELECT pg_terminate_backend(pid, 2000) FROM pg_stat_activity "
                                "WHERE application_name = 'catalog-cache'"))
    await _behind_the_back(catalog_db, shop.tenant, pid, "Changed while disconnected")
    assert await _title(replica, shop, pid) == "Changed while disconnected"

    # the listener reconnects and the cache serves again
    assert await _until_served_from_cache(replica, shop, catalog_db, pid) != "Original"


async def _search_titles(stub: catalog_pb2_grpc.CatalogServiceStub, shop: Shop, query: str) -> list[str]:
    reply = await stub.ListProducts(pb.ListProductsRequest(query=query, facets=["category"]), metadata=shop.customer)
    return [p.title for p in reply.products]


async def _until_search_served_from_cache(stub: catalog_pb2_grpc.CatalogServiceStub, shop: Shop, db: Database,
                                          product_id: str, query: str) -> list[str]:
    return await _until_cached(lambda: _search_titles(stub, shop, query),
                               lambda n: _behind_the_back(db, shop.tenant, product_id, f"{query} behind {n}"),
                               "a search")


async def test_a_cached_search_of_one_replica_shows_a_write_through_another_once_its_notice_arrives(
        shop: Shop, replica: catalog_pb2_grpc.CatalogServiceStub, catalog_db: Database) -> None:
    pid = (await shop.create(title="Teapot original")).product_id
    await _until_search_served_from_cache(replica, shop, catalog_db, pid, "teapot")
    await shop.stub.UpdateProduct(pb.UpdateProductRequest(
        product=pb.Product(product_id=pid, title="Teapot renamed"),
        update_mask=field_mask_pb2.FieldMask(paths=["title"])), metadata=shop.seller)

    async def renamed() -> bool:
        return await _search_titles(replica, shop, "teapot") == ["Teapot renamed"]
    assert await _soon(renamed)
    await _until_search_served_from_cache(replica, shop, catalog_db, pid, "teapot")
    imported = await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=[pb.CatalogEntry(
        product=pb.Product(sku="TEA-IMPORTED", title="Teapot imported", category="kitchen",
                           price=money_pb2.Money(currency_code="USD", amount_minor=100)))]), metadata=shop.seller)
    assert imported.created_count == 1

    async def imported_found() -> bool:
        return "Teapot imported" in await _search_titles(replica, shop, "teapot")
    assert await _soon(imported_found)
