"""Reservations under concurrency: the last units go to exactly as many buyers as
there are units, and a retried reservation holds its units once."""

from __future__ import annotations

import asyncio

import grpc

from services.runtime.db import Database
from tests.catalog.conftest import Stockroom
from tests.catalog.harness import count_rows
from tests.errors import error_details


async def test_twenty_buyers_for_the_last_seven_units_exactly_seven_get_one(stockroom: Stockroom,
                                                                            catalog_db: Database) -> None:
    pid = await stockroom.product(7)
    results = await asyncio.gather(*(stockroom.reserve(f"ord-{n}", (pid, 1)) for n in range(20)),
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert (len(won), len(lost)) == (7, 13)
    for error in lost:
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
        info = error_details(error)[0]
        assert (info.reason, info.metadata["product_id"], info.metadata["available"]) == ("OUT_OF_STOCK", pid, "0")
    assert await stockroom.stock(pid) == (7, 7, 0)
    assert await count_rows(catalog_db, stockroom.shop.tenant, "reservations") == 7
    await asyncio.gather(*(stockroom.commit(r.reservation_id) for r in won))
    assert await stockroom.stock(pid) == (0, 0, 0)


async def test_overlapping_multi_line_reservations_neither_deadlock_nor_oversell(stockroom: Stockroom) -> None:
    a, b, c = await stockroom.product(5), await stockroom.product(5), await stockroom.product(5)
    orders = [((a, 1), (b, 1)), ((b, 1), (c, 1)), ((c, 1), (a, 1)), ((a, 1), (b, 1), (c, 1))] * 3
    results = await asyncio.wait_for(asyncio.gather(
        *(stockroom.reserve(f"ord-{n}", *lines) for n, lines in enumerate(orders)), return_exceptions=True), 30)
    won = [orders[n] for n, r in enumerate(results) if not isinstance(r, BaseException)]
    assert all(isinstance(r, grpc.aio.AioRpcError) and error_details(r)[0].reason == "OUT_OF_STOCK"
               for r in results if isinstance(r, BaseException))
    for pid in (a, b, c):
        held = sum(q for lines in won for p, q in lines if p == pid)
        assert await stockroom.stock(pid) == (5, held, 5 - held)
        assert held <= 5


async def test_the_same_reservation_sent_concurrently_is_held_once(stockroom: Stockroom,
                                                                   catalog_db: Database) -> None:
    pid = await stockroom.product(10)
    results = await asyncio.gather(*(stockroom.reserve("ord-1", (pid, 3)) for _ in range(10)))
    assert len({r.SerializeToString(deterministic=True) for r in results}) == 1
    assert await stockroom.stock(pid) == (10, 3, 7)
    assert await count_rows(catalog_db, stockroom.shop.tenant, "reservations") == 1


async def test_concurrent_commit_and_release_end_in_one_consistent_state(stockroom: Stockroom) -> None:
    pid = await stockroom.product(10)
    await stockroom.reserve("ord-1", (pid, 4))
    results = await asyncio.gather(stockroom.commit("ord-1"), stockroom.release("ord-1"), stockroom.commit("ord-1"),
                                   return_exceptions=True)
    if isinstance(results[1], BaseException):  # commit won: the release is refused, the units are sold
        assert await stockroom.stock(pid) == (6, 0, 6)
    else:  # release won: the commits are refused, the units are back
        assert all(isinstance(r, grpc.aio.AioRpcError) for r in (results[0], results[2]))
        assert await stockroom.stock(pid) == (10, 0, 10)


async def test_fifty_concurrent_two_unit_reservations_of_fifteen_units_hold_fourteen_and_nothing_else(
        stockroom: Stockroom, catalog_db: Database) -> None:
    scarce, plenty = await stockroom.product(15), await stockroom.product(1000)
    results = await asyncio.gather(*(stockroom.reserve(f"ord-{n}", (scarce, 2), (plenty, 1)) for n in range(50)),
                                   return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert (len(won), len(lost)) == (7, 43)
    for error in lost:  # refused only once no two units were left; the other line held nothing
        assert isinstance(error, grpc.aio.AioRpcError)
        info = error_details(error)[0]
        assert (info.reason, info.metadata["product_id"], info.metadata["available"]) == ("OUT_OF_STOCK", scarce, "1")
    assert await stockroom.stock(scarce) == (15, 14, 1)
    assert await stockroom.stock(plenty) == (1000, 7, 993)
    assert await count_rows(catalog_db, stockroom.shop.tenant, "reservations") == 7
    assert await count_rows(catalog_db, stockroom.shop.tenant, "reservation_lines") == 14


async def test_overlapping_reservations_with_lines_in_opposite_orders_all_finish(stockroom: Stockroom) -> None:
    products = [await stockroom.product(1000) for _ in range(5)]
    forward = [(pid, 1) for pid in products]
    orders = [forward if n % 2 else forward[::-1] for n in range(30)]
    orders += [forward[n % 5:] + forward[:n % 5] for n in range(10)]  # every rotation
    results = await asyncio.wait_for(asyncio.gather(
        *(stockroom.reserve(f"ord-{n}", *lines) for n, lines in enumerate(orders)), return_exceptions=True), 30)
    assert [r for r in results if isinstance(r, BaseException)] == []
    for pid in products:
        assert await stockroom.stock(pid) == (1000, 40, 960)
    # and committing or releasing them, in any order, concurrently with new reservations
    settled = await asyncio.wait_for(asyncio.gather(
        *(stockroom.commit(f"ord-{n}") if n % 2 else stockroom.release(f"ord-{n}") for n in range(40)),
        *(stockroom.reserve(f"more-{n}", *orders[n]) for n in range(20)), return_exceptions=True), 30)
    assert [r for r in settled if isinstance(r, BaseException)] == []
    for pid in products:
        assert await stockroom.stock(pid) == (980, 20, 960)
