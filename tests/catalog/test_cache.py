"""The per-process product cache: two catalog replicas on one database; a replica
serves a product older than the last committed write only until that write's change
notice (NOTIFY, delivered after the commit, in milliseconds) reaches it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc
from google.protobuf import field_mask_pb2
from sqlalchemy import text

from services.runtime.db import Database, schema_for
from services.runtime.server import Running
from services.runtime.settings import Settings
from tests.catalog.conftest import Shop
from tests.catalog.harness import start_catalog
from tests.tokens import TestKeys


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


async def _until_served_from_cache(stub: catalog_pb2_grpc.CatalogServiceStub, shop: Shop, db: Database,
                                   product_id: str) -> str:
    """Reads until a change made behind the service's back stops showing: the replica's
    cache is then online and holds the product. Returns the cached title."""
    for attempt in range(100):
        cached = await _title(stub, shop, product_id)
        await _behind_the_back(db, shop.tenant, product_id, f"behind {attempt}")
        if await _title(stub, shop, product_id) == cached:
            return cached
        await asyncio.sleep(0.05)
    raise AssertionError("the replica never served from its cache")


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
