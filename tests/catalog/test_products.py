"""Products through the gRPC API: create, get, update with a field mask, archive,
and what shoppers see of each status."""

from __future__ import annotations

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.common.v1 import money_pb2
from google.protobuf import field_mask_pb2

from services.runtime.db import Database
from tests.catalog.conftest import Shop, product
from tests.catalog.harness import count_rows
from tests.errors import error_details

MISSING_ID = "prd_01JDAAAAAAAAAAAAAAAAAAAAAA"


async def test_created_product_is_read_back_with_server_fields(shop: Shop) -> None:
    created = (await shop.stub.CreateProduct(pb.CreateProductRequest(product=product(
        "TS-42", title="Trail shoe", description="Grippy.\n\tWaterproof.", attributes={"color": "red"},
        price=12999, currency="EUR")), metadata=shop.seller)).product

    assert created.product_id.startswith("prd_")
    assert created.name == f"products/{created.product_id}"
    assert created.status == pb.PRODUCT_STATUS_ACTIVE
    assert created.create_time.seconds > 0 and created.update_time == created.create_time
    read = (await shop.stub.GetProduct(pb.GetProductRequest(product_id=created.product_id),
                                       metadata=shop.customer)).product
    assert read == created
    assert (read.sku, read.title, read.description, dict(read.attributes)) == (
        "TS-42", "Trail shoe", "Grippy.\n\tWaterproof.", {"color": "red"})
    assert (read.price.currency_code, read.price.amount_minor) == ("EUR", 12999)


async def test_new_product_has_a_stock_level_of_zero(shop: Shop) -> None:
    created = await shop.create()
    stock = (await shop.stub.GetStock(pb.GetStockRequest(product_id=created.product_id),
                                      metadata=shop.customer)).stock
    assert (stock.product_id, stock.on_hand, stock.reserved, stock.available) == (created.product_id, 0, 0, 0)


async def test_duplicate_sku_is_already_exists_and_writes_nothing(shop: Shop, catalog_db: Database) -> None:
    await shop.create("DUP-1")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.create("DUP-1", title="Another")
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_details(caught.value)[0].reason == "SKU_EXISTS"
    assert await count_rows(catalog_db, shop.tenant, "products") == 1
    assert await count_rows(catalog_db, shop.tenant, "stock") == 1


@pytest.mark.parametrize("product_id", [MISSING_ID, "nope", "prd_" + "!" * 26, "PRD_01JDAAAAAAAAAAAAAAAAAAAAAA",
                                        "x" * 5000])
async def test_unknown_or_malformed_id_is_not_found(shop: Shop, product_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.GetProduct(pb.GetProductRequest(product_id=product_id), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(caught.value)[0].reason == "PRODUCT_NOT_FOUND"


async def test_update_changes_only_the_masked_fields(shop: Shop) -> None:
    created = await shop.create("UPD-1", title="Old title", price=1000, description="keep me")
    change = product("IGNORED", title="New title", price=1500, currency="USD", description="ignored too")
    change.product_id = created.product_id

    updated = (await shop.stub.UpdateProduct(pb.UpdateProductRequest(
        product=change, update_mask=field_mask_pb2.FieldMask(paths=["title", "price"])),
        metadata=shop.seller)).product

    assert (updated.title, updated.price.amount_minor) == ("New title", 1500)
    assert (updated.sku, updated.description) == ("UPD-1", "keep me")
    assert updated.create_time == created.create_time
    assert updated.update_time.ToDatetime() > created.update_time.ToDatetime()
    read = (await shop.stub.GetProduct(pb.GetProductRequest(product_id=created.product_id),
                                       metadata=shop.seller)).product
    assert read == updated


async def test_update_to_a_sku_already_taken_is_already_exists(shop: Shop) -> None:
    await shop.create("TAKEN")
    other = await shop.create("FREE")
    change = pb.Product(product_id=other.product_id, sku="TAKEN")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.UpdateProduct(pb.UpdateProductRequest(
            product=change, update_mask=field_mask_pb2.FieldMask(paths=["sku"])), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    read = await shop.stub.GetProduct(pb.GetProductRequest(product_id=other.product_id), metadata=shop.seller)
    assert read.product.sku == "FREE"


async def test_update_of_unknown_product_is_not_found(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.UpdateProduct(pb.UpdateProductRequest(
            product=pb.Product(product_id=MISSING_ID, title="x"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"])), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_archived_product_stays_readable_by_id_for_shoppers_but_leaves_the_default_list(shop: Shop) -> None:
    created = await shop.create("ARC-1")
    archived = (await shop.stub.ArchiveProduct(pb.ArchiveProductRequest(product_id=created.product_id),
                                               metadata=shop.seller)).product
    assert archived.status == pb.PRODUCT_STATUS_ARCHIVED

    by_id = await shop.stub.GetProduct(pb.GetProductRequest(product_id=created.product_id), metadata=shop.customer)
    assert by_id.product.status == pb.PRODUCT_STATUS_ARCHIVED
    listed = await shop.stub.ListProducts(pb.ListProductsRequest(), metadata=shop.customer)
    assert created.product_id not in [p.product_id for p in listed.products]
    asked = await shop.stub.ListProducts(pb.ListProductsRequest(status=pb.PRODUCT_STATUS_ARCHIVED),
                                         metadata=shop.customer)
    assert [p.product_id for p in asked.products] == [created.product_id]


async def test_archiving_twice_returns_the_archived_product_unchanged(shop: Shop) -> None:
    created = await shop.create()
    first = await shop.stub.ArchiveProduct(pb.ArchiveProductRequest(product_id=created.product_id),
                                           metadata=shop.seller)
    second = await shop.stub.ArchiveProduct(pb.ArchiveProductRequest(product_id=created.product_id),
                                            metadata=shop.seller)
    assert second.product == first.product


async def test_draft_product_does_not_exist_for_shoppers(shop: Shop) -> None:
    draft = await shop.create("DRAFT-1", status=pb.PRODUCT_STATUS_DRAFT)
    seen = await shop.stub.GetProduct(pb.GetProductRequest(product_id=draft.product_id), metadata=shop.seller)
    assert seen.product.status == pb.PRODUCT_STATUS_DRAFT

    for role in ("customer", "guest"):
        for call in (shop.stub.GetProduct(pb.GetProductRequest(product_id=draft.product_id), metadata=shop.as_(role)),
                     shop.stub.GetStock(pb.GetStockRequest(product_id=draft.product_id), metadata=shop.as_(role))):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await shop.stub.ListProducts(pb.ListProductsRequest(), metadata=shop.as_(role))
        assert list(listed.products) == []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await shop.stub.ListProducts(pb.ListProductsRequest(status=pb.PRODUCT_STATUS_DRAFT),
                                         metadata=shop.as_(role))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_staff_list_every_status_unless_they_filter(shop: Shop) -> None:
    ids = {status: (await shop.create(status=status)).product_id
           for status in (pb.PRODUCT_STATUS_DRAFT, pb.PRODUCT_STATUS_ACTIVE, pb.PRODUCT_STATUS_ARCHIVED)}
    every = await shop.stub.ListProducts(pb.ListProductsRequest(), metadata=shop.seller)
    assert sorted(p.product_id for p in every.products) == sorted(ids.values())
    drafts = await shop.stub.ListProducts(pb.ListProductsRequest(status=pb.PRODUCT_STATUS_DRAFT),
                                          metadata=shop.as_("owner"))
    assert [p.product_id for p in drafts.products] == [ids[pb.PRODUCT_STATUS_DRAFT]]


async def test_price_is_kept_exactly_in_minor_units(shop: Shop) -> None:
    created = (await shop.stub.CreateProduct(pb.CreateProductRequest(product=pb.Product(
        sku="BIG", title="Yacht", category="boats",
        price=money_pb2.Money(currency_code="JPY", amount_minor=10**12))), metadata=shop.seller)).product
    read = await shop.stub.GetProduct(pb.GetProductRequest(product_id=created.product_id), metadata=shop.seller)
    assert read.product.price.amount_minor == 10**12
