"""Stock levels: set, adjust, read; never below zero nor below what is reserved."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from sqlalchemy import text

from services.runtime.db import Database, schema_for
from tests.catalog.conftest import Shop
from tests.errors import error_details, violated_fields


async def _stock(shop: Shop, product_id: str) -> pb.StockLevel:
    level: pb.StockLevel = (await shop.stub.GetStock(pb.GetStockRequest(product_id=product_id),
                                                     metadata=shop.customer)).stock
    return level


async def test_set_then_adjust_up_and_down(shop: Shop) -> None:
    pid = (await shop.create()).product_id
    after_set = (await shop.stub.SetStock(pb.SetStockRequest(product_id=pid, on_hand=10), metadata=shop.seller)).stock
    assert (after_set.on_hand, after_set.available) == (10, 10)
    up = (await shop.stub.AdjustStock(pb.AdjustStockRequest(product_id=pid, delta=5), metadata=shop.seller)).stock
    down = (await shop.stub.AdjustStock(pb.AdjustStockRequest(product_id=pid, delta=-15), metadata=shop.seller)).stock
    assert (up.on_hand, down.on_hand) == (15, 0)
    assert (await _stock(shop, pid)).on_hand == 0


async def test_adjusting_below_zero_is_refused_and_changes_nothing(shop: Shop) -> None:
    pid = (await shop.create()).product_id
    await shop.stub.SetStock(pb.SetStockRequest(product_id=pid, on_hand=3), metadata=shop.seller)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.AdjustStock(pb.AdjustStockRequest(product_id=pid, delta=-4), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(caught.value)[0].reason == "INSUFFICIENT_STOCK"
    assert (await _stock(shop, pid)).on_hand == 3


async def test_stock_may_not_drop_below_what_is_reserved(shop: Shop, catalog_db: Database) -> None:
    pid = (await shop.create()).product_id
    await shop.stub.SetStock(pb.SetStockRequest(product_id=pid, on_hand=10), metadata=shop.seller)
    async with catalog_db.engine.begin() as conn:  # reservations arrive with the checkout issue
        await conn.execute(text(f'UPDATE "{schema_for(shop.tenant)}".stock SET reserved = 4 WHERE product_id = :p'),
                           {"p": pid})
    for call in (shop.stub.SetStock(pb.SetStockRequest(product_id=pid, on_hand=3), metadata=shop.seller),
                 shop.stub.AdjustStock(pb.AdjustStockRequest(product_id=pid, delta=-7), metadata=shop.seller)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_details(caught.value)[0].reason == "INSUFFICIENT_STOCK"
    level = await _stock(shop, pid)
    assert (level.on_hand, level.reserved, level.available) == (10, 4, 6)
    ok = (await shop.stub.AdjustStock(pb.AdjustStockRequest(product_id=pid, delta=-6), metadata=shop.seller)).stock
    assert (ok.on_hand, ok.available) == (4, 0)


async def test_concurrent_decrements_never_take_stock_below_zero(shop: Shop) -> None:
    pid = (await shop.create()).product_id
    await shop.stub.SetStock(pb.SetStockRequest(product_id=pid, on_hand=5), metadata=shop.seller)
    results = await asyncio.gather(*(
        shop.stub.AdjustStock(pb.AdjustStockRequest(product_id=pid, delta=-1), metadata=shop.seller)
        for _ in range(8)), return_exceptions=True)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 3 and all(r.code() == grpc.StatusCode.FAILED_PRECONDITION for r in refused)
    assert (await _stock(shop, pid)).on_hand == 0


async def test_adjusting_above_the_limit_is_refused(shop: Shop) -> None:
    pid = (await shop.create()).product_id
    await shop.stub.SetStock(pb.SetStockRequest(product_id=pid, on_hand=10**9), metadata=shop.seller)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.AdjustStock(pb.AdjustStockRequest(product_id=pid, delta=1), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (await _stock(shop, pid)).on_hand == 10**9


@pytest.mark.parametrize(("request_", "field"), [
    (pb.SetStockRequest(on_hand=-1), "on_hand"),
    (pb.SetStockRequest(on_hand=10**9 + 1), "on_hand"),
    (pb.AdjustStockRequest(delta=0), "delta"),
    (pb.AdjustStockRequest(delta=10**9 + 1), "delta"),
    (pb.AdjustStockRequest(delta=-(10**9) - 1), "delta"),
    (pb.AdjustStockRequest(delta=-(2**63)), "delta"),
])
async def test_bad_stock_numbers_name_the_field(shop: Shop, request_: pb.SetStockRequest | pb.AdjustStockRequest,
                                                field: str) -> None:
    pid = (await shop.create()).product_id
    request_.product_id = pid
    call = shop.stub.SetStock if isinstance(request_, pb.SetStockRequest) else shop.stub.AdjustStock
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(request_, metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]
    assert (await _stock(shop, pid)).on_hand == 0


async def test_stock_of_unknown_product_is_not_found(shop: Shop) -> None:
    for call in (shop.stub.GetStock(pb.GetStockRequest(product_id="prd_01JDAAAAAAAAAAAAAAAAAAAAAA"),
                                    metadata=shop.seller),
                 shop.stub.SetStock(pb.SetStockRequest(product_id="prd_01JDAAAAAAAAAAAAAAAAAAAAAA", on_hand=1),
                                    metadata=shop.seller),
                 shop.stub.AdjustStock(pb.AdjustStockRequest(product_id="garbage", delta=1), metadata=shop.seller)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
