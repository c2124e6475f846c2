"""ImportProducts (upsert by sku, with stock, per-entry errors) and ExportProducts,
against the real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from commerce.catalog.v1 import catalog_events_pb2 as ev
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc
from google.rpc import error_details_pb2

from services.runtime.db import Database
from tests.catalog.conftest import Shop, Stockroom, product
from tests.catalog.harness import count_rows, outbox
from tests.errors import violated_fields


def _entry(sku: str, on_hand: int | None = None, **fields: object) -> pb.CatalogEntry:
    entry = pb.CatalogEntry(product=product(sku, **fields))  # type: ignore[arg-type]
    if on_hand is not None:
        entry.on_hand = on_hand
    return entry


async def _import(shop: Shop, *entries: pb.CatalogEntry) -> pb.ImportProductsResponse:
    reply: pb.ImportProductsResponse = await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=entries),
                                                                      metadata=shop.seller)
    return reply


def _outcomes(reply: pb.ImportProductsResponse) -> list[str]:
    return [pb.ImportOutcome.Name(r.outcome).removeprefix("IMPORT_OUTCOME_") for r in reply.results]


async def _imported_events(db: Database, tenant: str) -> list[ev.ProductsImported]:
    return [ev.ProductsImported.FromString(payload) for kind, _, payload in await outbox(db, tenant)
            if kind.endswith("ProductsImported")]


async def test_new_skus_are_created_with_their_stock_and_found_by_search(
        shop: Shop, stockroom: Stockroom, catalog_db: Database) -> None:
    reply = await _import(shop, _entry("IMP-1", 7, title="Imported kettle"), _entry("IMP-2", title="Imported pot"))
    assert _outcomes(reply) == ["CREATED", "CREATED"] and reply.created_count == 2
    first, second = (r.product_id for r in reply.results)
    assert [r.sku for r in reply.results] == ["IMP-1", "IMP-2"] and [r.index for r in reply.results] == [0, 1]
    assert await stockroom.stock(first) == (7, 0, 7)
    assert await stockroom.stock(second) == (0, 0, 0)
    found = await shop.stub.ListProducts(pb.ListProductsRequest(query="imported"), metadata=shop.customer)
    assert {p.product_id for p in found.products} == {first, second}
    events = await _imported_events(catalog_db, shop.tenant)
    assert [[p.product_id for p in e.created] for e in events] == [[first, second]]


async def test_new_products_are_listed_oldest_first_in_the_order_they_were_sent(shop: Shop) -> None:
    skus = [f"ORD-{n:02d}-{uuid.uuid4().hex[:4]}" for n in range(40)][::-1]  # not in sku order
    reply = await _import(shop, *(_entry(sku) for sku in skus))
    ids = [r.product_id for r in reply.results]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    listed = await shop.stub.ListProducts(pb.ListProductsRequest(page_size=100), metadata=shop.seller)
    assert [p.sku for p in listed.products if p.sku in skus] == skus


async def test_a_known_sku_is_updated_and_the_same_entries_again_change_nothing(
        shop: Shop, stockroom: Stockroom, catalog_db: Database) -> None:
    archived = await shop.create("UPS-1", title="Old title", price=100)
    await shop.stub.ArchiveProduct(pb.ArchiveProductRequest(product_id=archived.product_id), metadata=shop.seller)
    entries = [_entry("UPS-1", 4, title="New title", price=250), _entry("UPS-2", 1, title="Another")]
    reply = await _import(shop, *entries)
    assert _outcomes(reply) == ["UPDATED", "CREATED"] and reply.results[0].product_id == archived.product_id
    got = (await shop.stub.GetProduct(pb.GetProductRequest(product_id=archived.product_id),
                                      metadata=shop.seller)).product
    assert (got.title, got.price.amount_minor) == ("New title", 250)
    assert got.status == pb.PRODUCT_STATUS_ARCHIVED, "no status sent: the product keeps its own"
    assert await stockroom.stock(archived.product_id) == (4, 0, 4)
    before = len(await outbox(catalog_db, shop.tenant))
    again = await _import(shop, *entries)
    assert _outcomes(again) == ["UNCHANGED", "UNCHANGED"] and again.unchanged_count == 2
    assert [r.product_id for r in again.results] == [r.product_id for r in reply.results]
    assert len(await outbox(catalog_db, shop.tenant)) == before, "nothing changed, nothing published"
    stock_only = await _import(shop, _entry("UPS-2", 9, title="Another"))
    assert _outcomes(stock_only) == ["UPDATED"]


async def test_refused_entries_are_reported_one_by_one_and_the_others_are_written(
        shop: Shop, stockroom: Stockroom, catalog_db: Database) -> None:
    held = await stockroom.product(10)
    held_sku = (await shop.stub.GetProduct(pb.GetProductRequest(product_id=held), metadata=shop.seller)).product.sku
    await stockroom.reserve(str(uuid.uuid4()), (held, 6))
    reply = await _import(
        shop,
        _entry("OK-1", title="Fine"),
        _entry("BAD-1", title=""),  # no title
        _entry("OK-1", title="Twice"),  # the same sku again
        _entry(held_sku, 5, title="Below reserved"),  # 6 are reserved
        pb.CatalogEntry(on_hand=3),  # no product
        _entry("BAD-2", -1, title="Negative"),
        _entry("OK-2", title="Also fine", currency="XXX"),  # not a circulating currency
    )
    assert _outcomes(reply) == ["CREATED", "FAILED", "FAILED", "FAILED", "FAILED", "FAILED", "FAILED"]
    assert (reply.created_count, reply.failed_count) == (1, 6)
    reasons = []
    for result in reply.results[1:]:
        assert not result.product_id
        bad, info = error_details_pb2.BadRequest(), error_details_pb2.ErrorInfo()
        fields = []
        for detail in result.error.details:
            if detail.Unpack(bad):
                fields = [v.field for v in bad.field_violations]
            detail.Unpack(info)
        reasons.append((result.error.code, info.reason, fields))
    assert reasons == [(3, "INVALID_ARGUMENT", ["product.title"]), (3, "INVALID_ARGUMENT", ["product.sku"]),
                       (9, "INSUFFICIENT_STOCK", []), (3, "INVALID_ARGUMENT", ["product"]),
                       (3, "INVALID_ARGUMENT", ["on_hand"]), (3, "INVALID_ARGUMENT", ["product.price.currency_code"])]
    assert await stockroom.stock(held) == (10, 6, 4)
    assert await count_rows(catalog_db, shop.tenant, "products") == 2  # the held one and OK-1


@pytest.mark.parametrize("count", [0, 1001])
async def test_a_batch_of_no_entries_or_more_than_a_thousand_is_refused(shop: Shop, count: int) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _import(shop, *[_entry(f"N-{n}") for n in range(count)])
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and violated_fields(caught.value) == ["entries"]


async def test_stock_falling_to_the_low_stock_threshold_publishes_low_stock(
        shop: Shop, stockroom: Stockroom, catalog_db: Database) -> None:
    await _import(shop, _entry("LOW-1", 20, title="Plenty"))
    await _import(shop, _entry("LOW-1", 3, title="Plenty"))
    kinds = [kind.rsplit(".", 1)[-1] for kind, _, _ in await outbox(catalog_db, shop.tenant)]
    assert kinds == ["ProductsImported", "LowStock"]


async def test_the_export_streams_every_product_with_its_stock_and_imports_back_unchanged(
        shop: Shop, channel: grpc.aio.Channel) -> None:
    reply = await _import(shop, *[_entry(f"EXP-{n:02d}", n, title=f"Exported {n}", attributes={"n": str(n)},
                                         status=(pb.PRODUCT_STATUS_DRAFT if n == 3 else pb.PRODUCT_STATUS_ACTIVE))
                                  for n in range(25)])
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    batches = [b async for b in stub.ExportProducts(pb.ExportProductsRequest(batch_size=10), metadata=shop.seller)]
    assert [len(b.entries) for b in batches] == [10, 10, 5]
    entries = [e for b in batches for e in b.entries]
    assert [e.product.product_id for e in entries] == sorted(r.product_id for r in reply.results)
    assert {e.product.sku: e.on_hand for e in entries} == {f"EXP-{n:02d}": n for n in range(25)}
    again = await _import(shop, *entries)
    assert set(_outcomes(again)) == {"UNCHANGED"}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.ExportProducts(pb.ExportProductsRequest(batch_size=1001), metadata=shop.seller):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_concurrent_imports_and_reservations_of_the_same_products_never_deadlock_nor_oversell(
        shop: Shop, stockroom: Stockroom) -> None:
    skus = [f"CON-{n:02d}" for n in range(20)]
    first = await _import(shop, *[_entry(sku, 50, title=sku) for sku in skus])
    ids = [r.product_id for r in first.results]

    async def importer(order: list[str], on_hand: int) -> None:
        for _ in range(3):
            await _import(shop, *[_entry(sku, on_hand, title=sku) for sku in order])

    async def reserver(n: int) -> None:
        for k in range(6):
            lines = [(ids[(n + k) % 20], 1), (ids[(n + 2 * k + 7) % 20], 2)]
            if lines[0][0] != lines[1][0]:
                await stockroom.reserve(str(uuid.uuid4()), *lines)

    await asyncio.gather(importer(skus, 40), importer(list(reversed(skus)), 45), *(reserver(n) for n in range(4)))
    for product_id in ids:
        on_hand, reserved, available = await stockroom.stock(product_id)
        assert on_hand in (40, 45) and 0 <= reserved <= on_hand and available == on_hand - reserved


async def test_the_same_new_entries_imported_twice_at_once_are_created_once_and_neither_call_fails(
        shop: Shop, stockroom: Stockroom) -> None:
    """A client retrying an import whose first call is still running: both calls found the skus
    new, one creates them, the other finds them created alike (and leaves their stock as set)."""
    for round_ in range(5):
        entries = [_entry(f"TWICE-{round_}-{n}", 5, title=f"Twice {n}") for n in range(20)]
        replies = await asyncio.gather(_import(shop, *entries), _import(shop, *entries))
        ids = [[r.product_id for r in reply.results] for reply in replies]
        assert ids[0] == ids[1] and all(ids[0])
        assert sorted(o for reply in replies for o in set(_outcomes(reply))) in (["CREATED", "UNCHANGED"],
                                                                                 ["CREATED"], ["UNCHANGED"])
        assert sum(reply.created_count for reply in replies) == 20
        assert {await stockroom.stock(pid) for pid in ids[0]} == {(5, 0, 5)}
