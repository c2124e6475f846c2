"""Pure reservation rules: request checks, retries, refusals, low-stock crossings,
confirmed orders' lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.catalog.domain.reservation import (
    Line,
    OnSale,
    Reservation,
    ReservationState,
    Taken,
    confirmed_sale,
    crossed_low_stock,
    newly_low,
    not_committable,
    refusal,
    reserve_request,
)
from services.runtime.errors import InvalidArgument

A, B, C = "prd_01JDAAAAAAAAAAAAAAAAAAAAA1", "prd_01JDAAAAAAAAAAAAAAAAAAAAA2", "prd_01JDAAAAAAAAAAAAAAAAAAAAA3"


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


def test_a_refused_reservation_names_the_product_not_for_sale_before_any_short_one() -> None:
    short, unavailable = OnSale(Line(A, 3), "ACTIVE", 2), OnSale(Line(B, 1), "DRAFT", 10)
    refused = refusal([short, unavailable])
    assert refused is not None
    assert (refused.reason, refused.metadata["product_id"], refused.metadata["status"]) == (
        "PRODUCT_UNAVAILABLE", B, "DRAFT")
    missing = refusal([OnSale(Line(A, 1), "ACTIVE", 5), OnSale(Line(B, 1), None, 0)])
    assert missing is not None and (missing.reason, missing.metadata["status"]) == ("PRODUCT_UNAVAILABLE",
                                                                                    "NOT_FOUND")
    out = refusal([short, OnSale(Line(B, 1), "ACTIVE", 0)])
    assert out is not None
    assert (out.reason, out.metadata) == ("OUT_OF_STOCK", {"product_id": A, "requested": "3", "available": "2"})


def test_nothing_to_refuse_when_every_line_has_its_units_again() -> None:
    assert refusal([OnSale(Line(A, 3), "ACTIVE", 3), OnSale(Line(B, 1), "ACTIVE", 9)]) is None


def test_only_lines_that_took_available_stock_across_the_threshold_are_newly_low() -> None:
    crossed, below_already, above = Taken(A, "SKU-A", 2, 4), Taken(B, "SKU-B", 1, 3), Taken(C, "SKU-C", 1, 6)
    assert newly_low([crossed, below_already, above]) == [crossed]
    assert newly_low([Taken(A, "SKU-A", 1, 5)]) == [Taken(A, "SKU-A", 1, 5)]  # 6 -> 5: at the threshold


def test_a_confirmed_orders_lines_are_added_up_per_product_and_checked() -> None:
    assert confirmed_sale("ord-1", [(B, 1), (A, 2), (B, 3)]) == ("ord-1", (Line(A, 2), Line(B, 4)))
    with pytest.raises(InvalidArgument) as caught:
        confirmed_sale("", [("nope", 1), (A, 0)])
    assert [v.field for v in caught.value.violations] == ["reservation_id", "lines[0].product_id",
                                                          "lines[1].quantity"]
    with pytest.raises(InvalidArgument):
        confirmed_sale("ord-1", [])
