"""Pure reservation rules: request checks, retries, refusals, low-stock crossings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.catalog.domain.reservation import (
    Line,
    Reservation,
    ReservationState,
    crossed_low_stock,
    not_committable,
    reserve_request,
)
from services.runtime.errors import InvalidArgument

A, B = "prd_01JDAAAAAAAAAAAAAAAAAAAAA1", "prd_01JDAAAAAAAAAAAAAAAAAAAAA2"


def test_lines_are_sorted_by_product_so_stock_rows_are_locked_in_one_order() -> None:
    request = reserve_request("ord-1", [(B, 1), (A, 2)], 0)
    assert request.lines == (Line(A, 2), Line(B, 1))
    assert request.ttl_seconds == 900
    assert request.same_lines([Line(B, 1), Line(A, 2)])
    assert not request.same_lines([Line(A, 2)])


def test_every_bad_field_is_named_at_once() -> None:
    with pytest.raises(InvalidArgument) as caught:
        reserve_request("", [(A, 1), (A, 0), ("", 5)], 4000)
    assert [v.field for v in caught.value.violations] == [
        "reservation_id", "lines[1].product_id", "lines[1].quantity", "lines[2].product_id", "ttl_seconds"]


def test_low_stock_is_crossed_once_on_the_way_down() -> None:
    assert crossed_low_stock(6, 5) and crossed_low_stock(100, 0)
    assert not crossed_low_stock(5, 4)  # already below
    assert not crossed_low_stock(4, 6)  # going up
    assert not crossed_low_stock(9, 6)


def test_a_held_reservation_past_its_expiry_counts_as_expired() -> None:
    now = datetime.now(UTC)
    held = Reservation("ord-1", (Line(A, 1),), ReservationState.HELD, now - timedelta(seconds=1))
    assert held.is_lapsed(now)
    refusal = not_committable(held)
    assert (refusal.reason, refusal.metadata["state"]) == ("RESERVATION_EXPIRED", "EXPIRED")
    assert not Reservation("ord-1", (), ReservationState.HELD, now + timedelta(seconds=1)).is_lapsed(now)
