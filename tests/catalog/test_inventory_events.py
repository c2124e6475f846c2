"""Reservations that lapse, and the stock events every change writes to the
outbox in its own transaction."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from commerce.catalog.v1 import catalog_events_pb2 as ev
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import inventory_pb2 as inv
from sqlalchemy import text

from services.runtime.db import Database, schema_for
from tests.catalog.conftest import Stockroom
from tests.catalog.harness import outbox
from tests.errors import error_details


async def wait_for_state(stockroom: Stockroom, reservation_id: str, pid: str, state: int,
                         within: float = 8.0) -> inv.Reservation:
    """The reservation once the sweeper has moved it to ``state`` (reserving it again reads it)."""
    deadline = time.monotonic() + within
    while True:
        current = await stockroom.reserve(reservation_id, (pid, 2))
        if current.state == state or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.2)


async def test_a_lapsed_reservation_is_expired_by_the_sweeper_and_its_units_come_back(
        stockroom: Stockroom, catalog_db: Database) -> None:
    pid = await stockroom.product(3)
    await stockroom.reserve("ord-1", (pid, 2), ttl=1)
    assert await stockroom.stock(pid) == (3, 2, 1)
    expired = await wait_for_state(stockroom, "ord-1", pid, inv.RESERVATION_STATE_EXPIRED)
    assert expired.state == inv.RESERVATION_STATE_EXPIRED
    assert await stockroom.stock(pid) == (3, 0, 3)
    error = await _refused(stockroom.commit("ord-1"))  # the order came back too late
    assert (error.code(), error_details(error)[0].reason) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                              "RESERVATION_EXPIRED")
    assert (await stockroom.release("ord-1")).state == inv.RESERVATION_STATE_EXPIRED  # a no-op
    assert await stockroom.stock(pid) == (3, 0, 3)
    released = ev.StockReleased.FromString((await outbox(catalog_db, stockroom.shop.tenant))[-1][2])
    assert (released.reservation_id, released.state) == ("ord-1", inv.RESERVATION_STATE_EXPIRED)


async def test_committing_past_expiry_is_refused_even_before_the_sweeper_runs(stockroom: Stockroom,
                                                                             catalog_db: Database) -> None:
    pid = await stockroom.product(3)
    await stockroom.reserve("ord-1", (pid, 2), ttl=1)
    async with catalog_db.engine.begin() as conn:  # lapse it now, whatever the sweeper's timing
        await conn.execute(text(f'UPDATE "{schema_for(stockroom.shop.tenant)}".reservations '
                                "SET expire_time = now() - interval '1 second'"))
    error = await _refused(stockroom.commit("ord-1"))
    assert error_details(error)[0].reason == "RESERVATION_EXPIRED"
    assert await stockroom.stock(pid) == (3, 0, 3)


async def test_only_a_release_writes_a_stock_event_reserve_and_commit_write_none(
        stockroom: Stockroom, catalog_db: Database) -> None:
    pid = await stockroom.product(20)
    tenant = stockroom.shop.tenant
    before = len(await outbox(catalog_db, tenant))
    await stockroom.reserve("ord-1", (pid, 2))
    await stockroom.reserve("ord-1", (pid, 2))  # a retry
    await stockroom.commit("ord-1")
    await stockroom.commit("ord-1")
    await stockroom.reserve("ord-2", (pid, 1))
    await stockroom.release("ord-2")
    await stockroom.release("ord-2")  # a no-op writes nothing
    rows = (await outbox(catalog_db, tenant))[before:]
    # StockReserved and StockCommitted are deprecated: nothing consumed them.
    assert [(t.rsplit(".", 1)[1], s) for t, s, _ in rows] == [
        ("StockReleased", f"commerce.catalog.v1.stock_released.{tenant}")]
    released = ev.StockReleased.FromString(rows[0][2])
    assert (released.reservation_id, [(x.product_id, x.quantity) for x in released.lines]) == ("ord-2", [(pid, 1)])
    assert (released.metadata.tenant_id, released.metadata.aggregate_id) == (tenant, "ord-2")
    assert released.metadata.event_type == "commerce.catalog.v1.StockReleased"
    assert released.state == inv.RESERVATION_STATE_RELEASED


async def test_a_refused_reservation_writes_no_event(stockroom: Stockroom, catalog_db: Database) -> None:
    plenty, scarce = await stockroom.product(10), await stockroom.product(1)
    before = len(await outbox(catalog_db, stockroom.shop.tenant))
    await _refused(stockroom.reserve("ord-1", (plenty, 1), (scarce, 2)))
    assert len(await outbox(catalog_db, stockroom.shop.tenant)) == before


async def test_low_stock_is_published_once_when_available_crosses_the_threshold(stockroom: Stockroom,
                                                                                 catalog_db: Database) -> None:
    pid = await stockroom.product(8)
    tenant = stockroom.shop.tenant
    await stockroom.reserve("ord-1", (pid, 2))  # 6 left: above the threshold of 5
    await stockroom.reserve("ord-2", (pid, 2))  # 4 left: crossed
    await stockroom.reserve("ord-3", (pid, 1))  # 3 left: still below, no second event
    await stockroom.release("ord-2")  # back to 5... and up to 5 is not a crossing downwards
    await stockroom.shop.stub.AdjustStock(pb.AdjustStockRequest(product_id=pid, delta=10),
                                          metadata=stockroom.shop.seller)  # 15 available
    await stockroom.shop.stub.SetStock(pb.SetStockRequest(product_id=pid, on_hand=6),
                                       metadata=stockroom.shop.seller)  # 3 available: crossed again
    low = [ev.LowStock.FromString(p) for t, _, p in await outbox(catalog_db, tenant) if t.endswith(".LowStock")]
    assert [(e.product_id, e.available, e.threshold) for e in low] == [(pid, 4, 5), (pid, 3, 5)]
    assert all(e.sku for e in low)


async def _refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_product_changes_write_product_events_with_what_changed(stockroom: Stockroom,
                                                                     catalog_db: Database) -> None:
    tenant, shop = stockroom.shop.tenant, stockroom.shop
    before = len(await outbox(catalog_db, tenant))
    pid = await stockroom.product(0)
    update = pb.UpdateProductRequest(product=pb.Product(product_id=pid, title="Renamed"), request_id="upd-1")
    update.update_mask.paths.append("title")
    await shop.stub.UpdateProduct(update, metadata=shop.seller)
    await shop.stub.UpdateProduct(update, metadata=shop.seller)  # a retry writes nothing more
    bad = pb.UpdateProductRequest(product=pb.Product(product_id=pid, title=""))
    bad.update_mask.paths.append("title")
    await _refused(shop.stub.UpdateProduct(bad, metadata=shop.seller))  # refused: no event
    await shop.stub.ArchiveProduct(pb.ArchiveProductRequest(product_id=pid), metadata=shop.seller)
    await shop.stub.ArchiveProduct(pb.ArchiveProductRequest(product_id=pid), metadata=shop.seller)  # a no-op
    rows = (await outbox(catalog_db, tenant))[before:]
    assert [t.rsplit(".", 1)[1] for t, _, _ in rows] == ["ProductCreated", "ProductUpdated", "ProductUpdated"]
    assert rows[0][1] == f"commerce.catalog.v1.product_created.{tenant}"
    created = ev.ProductCreated.FromString(rows[0][2])
    assert (created.product.product_id, created.metadata.aggregate_id, created.metadata.tenant_id) == (
        pid, pid, tenant)
    renamed = ev.ProductUpdated.FromString(rows[1][2])
    assert (renamed.product.title, list(renamed.update_mask.paths)) == ("Renamed", ["title"])
    archived = ev.ProductUpdated.FromString(rows[2][2])
    assert (archived.product.status, list(archived.update_mask.paths)) == (pb.PRODUCT_STATUS_ARCHIVED, ["status"])
