"""Retries with the same request_id return the first answer and change nothing more (AIP-155)."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from google.protobuf import field_mask_pb2

from services.runtime.db import Database
from tests.catalog.conftest import Shop, product
from tests.catalog.harness import count_rows
from tests.errors import error_details, violated_fields


async def test_retried_create_returns_the_same_product_and_one_row(shop: Shop, catalog_db: Database) -> None:
    request = pb.CreateProductRequest(product=product("IDEM-1"), request_id=str(uuid.uuid4()))
    first = await shop.stub.CreateProduct(request, metadata=shop.seller)
    again = await shop.stub.CreateProduct(request, metadata=shop.seller)
    assert again == first
    assert await count_rows(catalog_db, shop.tenant, "products") == 1


async def test_concurrent_retries_of_one_create_make_one_product(shop: Shop, catalog_db: Database) -> None:
    request = pb.CreateProductRequest(product=product("IDEM-2"), request_id=str(uuid.uuid4()))
    replies = await asyncio.gather(*(shop.stub.CreateProduct(request, metadata=shop.seller) for _ in range(6)))
    assert len({r.product.product_id for r in replies}) == 1
    assert await count_rows(catalog_db, shop.tenant, "products") == 1


async def test_same_request_id_for_a_different_request_is_refused(shop: Shop, catalog_db: Database) -> None:
    request_id = str(uuid.uuid4())
    await shop.stub.CreateProduct(pb.CreateProductRequest(product=product("IDEM-3"), request_id=request_id),
                                  metadata=shop.seller)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.CreateProduct(pb.CreateProductRequest(product=product("IDEM-4"), request_id=request_id),
                                      metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(caught.value)[0].reason == "REQUEST_ID_REUSED"
    assert await count_rows(catalog_db, shop.tenant, "products") == 1


async def test_retried_adjust_is_applied_once(shop: Shop) -> None:
    pid = (await shop.create()).product_id
    request = pb.AdjustStockRequest(product_id=pid, delta=7, request_id=str(uuid.uuid4()))
    replies = await asyncio.gather(*(shop.stub.AdjustStock(request, metadata=shop.seller) for _ in range(4)))
    assert {r.stock.on_hand for r in replies} == {7}
    await shop.stub.AdjustStock(request, metadata=shop.seller)
    level = await shop.stub.GetStock(pb.GetStockRequest(product_id=pid), metadata=shop.seller)
    assert level.stock.on_hand == 7


async def test_retried_update_returns_the_first_answer_even_after_a_later_change(shop: Shop) -> None:
    pid = (await shop.create(title="v0")).product_id
    request = pb.UpdateProductRequest(product=pb.Product(product_id=pid, title="v1"),
                                      update_mask=field_mask_pb2.FieldMask(paths=["title"]),
                                      request_id=str(uuid.uuid4()))
    first = await shop.stub.UpdateProduct(request, metadata=shop.seller)
    await shop.stub.UpdateProduct(pb.UpdateProductRequest(product=pb.Product(product_id=pid, title="v2"),
                                                          update_mask=field_mask_pb2.FieldMask(paths=["title"])),
                                  metadata=shop.seller)
    again = await shop.stub.UpdateProduct(request, metadata=shop.seller)
    assert again == first
    current = await shop.stub.GetProduct(pb.GetProductRequest(product_id=pid), metadata=shop.seller)
    assert current.product.title == "v2"


async def test_malformed_request_id_is_invalid_argument(shop: Shop, catalog_db: Database) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.CreateProduct(pb.CreateProductRequest(product=product("IDEM-5"), request_id="bad id!"),
                                      metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["request_id"]
    assert await count_rows(catalog_db, shop.tenant, "products") == 0
