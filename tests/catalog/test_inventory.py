"""InventoryService: reserve, commit and release stock for checkout, through the
real server and PostgreSQL, called with a service token as the order service does."""

from __future__ import annotations

import time

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import inventory_pb2 as inv

from services.runtime.db import Database
from tests.catalog.conftest import Stockroom
from tests.catalog.harness import count_rows
from tests.errors import error_details, violated_fields

HELD, COMMITTED = inv.RESERVATION_STATE_HELD, inv.RESERVATION_STATE_COMMITTED
RELEASED = inv.RESERVATION_STATE_RELEASED


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


async def test_reserving_holds_units_and_lowers_available(stockroom: Stockroom) -> None:
    pid = await stockroom.product(10)
    held = await stockroom.reserve("ord-1", (pid, 3))
    assert held.state == HELD and [(line.product_id, line.quantity) for line in held.lines] == [(pid, 3)]
    assert 895 <= held.expire_time.seconds - time.time() <= 905  # the default time to live
    assert await stockroom.stock(pid) == (10, 3, 7)


async def test_commit_sells_the_units(stockroom: Stockroom) -> None:
    pid = await stockroom.product(10)
    await stockroom.reserve("ord-1", (pid, 4))
    committed = await stockroom.commit("ord-1")
    assert committed.state == COMMITTED
    assert await stockroom.stock(pid) == (6, 0, 6)
    again = await stockroom.commit("ord-1")  # a retried commit changes nothing
    assert again.state == COMMITTED
    assert await stockroom.stock(pid) == (6, 0, 6)


async def test_release_gives_the_units_back_once(stockroom: Stockroom) -> None:
    pid = await stockroom.product(10)
    await stockroom.reserve("ord-1", (pid, 4))
    assert (await stockroom.release("ord-1")).state == RELEASED
    assert (await stockroom.release("ord-1")).state == RELEASED
    assert await stockroom.stock(pid) == (10, 0, 10)


async def test_released_reservation_cannot_be_committed(stockroom: Stockroom) -> None:
    pid = await stockroom.product(10)
    await stockroom.reserve("ord-1", (pid, 4))
    await stockroom.release("ord-1")
    error = await refused(stockroom.commit("ord-1"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(error)[0].reason == "RESERVATION_EXPIRED"
    assert await stockroom.stock(pid) == (10, 0, 10)


async def test_release_after_commit_is_refused_and_restock_goes_through_adjust_stock(stockroom: Stockroom) -> None:
    pid = await stockroom.product(10)
    await stockroom.reserve("ord-1", (pid, 4))
    await stockroom.commit("ord-1")
    error = await refused(stockroom.release("ord-1"))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(error)[0].reason == "RESERVATION_COMMITTED"
    assert await stockroom.stock(pid) == (6, 0, 6)
    restock = pb.AdjustStockRequest(product_id=pid, delta=4, request_id="return-ord-1")
    for _ in range(2):  # the order service retries; the request_id makes it count once
        await stockroom.shop.stub.AdjustStock(restock, metadata=stockroom.service)
    assert await stockroom.stock(pid) == (10, 0, 10)


async def test_unknown_reservation_is_not_found(stockroom: Stockroom) -> None:
    for call in (stockroom.commit("ord-nope"), stockroom.release("ord-nope")):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error_details(error)[0].reason == "RESERVATION_NOT_FOUND"


async def test_multi_line_reservation_is_all_or_nothing(stockroom: Stockroom, catalog_db: Database) -> None:
    plenty, scarce, also = await stockroom.product(10), await stockroom.product(2), await stockroom.product(10)
    events_before = await count_rows(catalog_db, stockroom.shop.tenant, "outbox")  # the products' own
    error = await refused(stockroom.reserve("ord-1", (plenty, 5), (scarce, 3), (also, 1)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_details(error)[0]
    assert info.reason == "OUT_OF_STOCK"
    assert (info.metadata["product_id"], info.metadata["available"]) == (scarce, "2")
    for pid, on_hand in ((plenty, 10), (scarce, 2), (also, 10)):
        assert await stockroom.stock(pid) == (on_hand, 0, on_hand)
    assert await count_rows(catalog_db, stockroom.shop.tenant, "reservations") == 0
    assert await count_rows(catalog_db, stockroom.shop.tenant, "outbox") == events_before
    held = await stockroom.reserve("ord-1", (plenty, 5), (scarce, 2), (also, 1))  # the same id may try again
    assert held.state == HELD
    assert [await stockroom.stock(p) for p in (plenty, scarce, also)] == [(10, 5, 5), (2, 2, 0), (10, 1, 9)]


async def test_retrying_a_reservation_returns_it_without_holding_more(stockroom: Stockroom) -> None:
    pid = await stockroom.product(10)
    first = await stockroom.reserve("ord-1", (pid, 3))
    again = await stockroom.reserve("ord-1", (pid, 3), ttl=60)
    assert again == first
    assert await stockroom.stock(pid) == (10, 3, 7)
    await stockroom.commit("ord-1")
    assert (await stockroom.reserve("ord-1", (pid, 3))).state == COMMITTED
    assert await stockroom.stock(pid) == (7, 0, 7)


async def test_reusing_a_reservation_id_for_other_lines_is_refused(stockroom: Stockroom) -> None:
    pid, other = await stockroom.product(10), await stockroom.product(10)
    await stockroom.reserve("ord-1", (pid, 3))
    for lines in (((pid, 4),), ((pid, 3), (other, 1)), ((other, 3),)):
        error = await refused(stockroom.reserve("ord-1", *lines))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_details(error)[0].reason == "REQUEST_ID_REUSED"
    assert [await stockroom.stock(p) for p in (pid, other)] == [(10, 3, 7), (10, 0, 10)]


@pytest.mark.parametrize("status", [pb.PRODUCT_STATUS_DRAFT, pb.PRODUCT_STATUS_ARCHIVED, None])
async def test_products_not_for_sale_cannot_be_reserved(stockroom: Stockroom, status: int | None) -> None:
    pid = await stockroom.product(10)
    target = "prd_01JDAAAAAAAAAAAAAAAAAAAAAA"
    if status is not None:
        target = await stockroom.product(10, status=status)
    error = await refused(stockroom.reserve("ord-1", (pid, 1), (target, 1)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_details(error)[0]
    assert (info.reason, info.metadata["product_id"]) == ("PRODUCT_UNAVAILABLE", target)
    assert await stockroom.stock(pid) == (10, 0, 10)


async def test_inventory_is_for_services_only(stockroom: Stockroom) -> None:
    pid = await stockroom.product(10)
    request = inv.ReserveStockRequest(reservation_id="ord-1", lines=[inv.ReservationLine(product_id=pid, quantity=1)])
    for roles in (["customer"], ["seller"], ["owner"], ["guest"]):
        error = await refused(stockroom.stub.ReserveStock(request, metadata=stockroom.shop.as_(*roles)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    error = await refused(stockroom.stub.ReserveStock(request))
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await stockroom.stock(pid) == (10, 0, 10)


def _request(reservation_id: str = "ord-1", lines: list[tuple[str, int]] | None = None,
             ttl: int = 0) -> inv.ReserveStockRequest:
    return inv.ReserveStockRequest(reservation_id=reservation_id, ttl_seconds=ttl, lines=[
        inv.ReservationLine(product_id=p, quantity=q) for p, q in (lines if lines is not None else [("P", 1)])])


P2 = "prd_01JDAAAAAAAAAAAAAAAAAAAAA2"


@pytest.mark.parametrize(("request_", "fields"), [
    (_request(reservation_id=""), ["reservation_id"]),
    (_request(reservation_id="ord 1"), ["reservation_id"]),
    (_request(reservation_id="x" * 129), ["reservation_id"]),
    (_request(lines=[]), ["lines"]),
    (_request(lines=[("P", 1)] * 101), ["lines"]),
    (_request(lines=[("P", 0)]), ["lines[0].quantity"]),
    (_request(lines=[("P", -1)]), ["lines[0].quantity"]),
    (_request(lines=[("P", 1001)]), ["lines[0].quantity"]),
    (_request(lines=[("P", 1), (P2, 1), ("", 1)]), ["lines[2].product_id"]),
    (_request(lines=[("P", 1), (P2, 1), ("garbage", 1)]), ["lines[2].product_id"]),
    (_request(lines=[("P", 1), (P2, 1), ("P", 2)]), ["lines[2].product_id"]),
    (_request(ttl=-1), ["ttl_seconds"]),
    (_request(ttl=3601), ["ttl_seconds"]),
    (_request(reservation_id="", lines=[("P", 0)], ttl=5000),
     ["reservation_id", "lines[0].quantity", "ttl_seconds"]),
])
async def test_bad_reserve_requests_name_the_field_and_write_nothing(
        stockroom: Stockroom, catalog_db: Database, request_: inv.ReserveStockRequest, fields: list[str]) -> None:
    pid = await stockroom.product(10)
    for line in request_.lines:
        if line.product_id == "P":
            line.product_id = pid
    error = await refused(stockroom.stub.ReserveStock(request_, metadata=stockroom.service))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(error) == fields
    assert await stockroom.stock(pid) == (10, 0, 10)
    assert await count_rows(catalog_db, stockroom.shop.tenant, "reservations") == 0


@pytest.mark.parametrize("reservation_id", ["", "ord 1", "x" * 129])
async def test_bad_reservation_id_on_commit_and_release_names_the_field(stockroom: Stockroom,
                                                                        reservation_id: str) -> None:
    for call in (stockroom.commit(reservation_id), stockroom.release(reservation_id)):
        error = await refused(call)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(error) == ["reservation_id"]


async def test_ttl_bounds_are_accepted(stockroom: Stockroom) -> None:
    pid = await stockroom.product(10)
    now = time.time()
    for ttl, lives in ((1, 1), (0, 900), (3600, 3600)):
        held = await stockroom.reserve(f"ord-{ttl}", (pid, 1), ttl=ttl)
        assert abs(held.expire_time.seconds - now - lives) <= 5
