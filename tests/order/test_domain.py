"""Pure domain rules: the status machine, totals and their rounding, return lines."""

from __future__ import annotations

import pytest

from services.order.domain import validation
from services.order.domain.order import OrderLine, ReturnLine
from services.order.domain.status import TRANSITIONS, OrderStatus, check_move
from services.order.domain.totals import FLAT, WEIGHT, Rules, ShippingRule, TaxRate, round_bps, totals
from services.runtime.errors import FailedPrecondition, InvalidArgument

S = OrderStatus
ALLOWED = {(S.PENDING, S.CONFIRMED), (S.PENDING, S.RESERVED), (S.RESERVED, S.PAID), (S.PAID, S.CONFIRMED),
           (S.CONFIRMED, S.SHIPPED),
           (S.SHIPPED, S.DELIVERED), (S.DELIVERED, S.RETURN_REQUESTED), (S.RETURN_REQUESTED, S.RETURNED),
           (S.RETURNED, S.REFUNDED), (S.PENDING, S.FAILED), (S.RESERVED, S.FAILED), (S.PAID, S.FAILED),
           (S.PENDING, S.CANCELLED), (S.RESERVED, S.CANCELLED), (S.PAID, S.CANCELLED), (S.CONFIRMED, S.CANCELLED)}


@pytest.mark.parametrize("current", list(S))
def test_only_the_moves_of_the_proto_are_allowed(current: OrderStatus) -> None:
    for target in S:
        if (current, target) in ALLOWED:
            check_move(current, target)
        else:
            with pytest.raises(FailedPrecondition) as caught:
                check_move(current, target)
            assert caught.value.reason == "INVALID_ORDER_STATUS"
    assert {(a, b) for a, bs in TRANSITIONS.items() for b in bs} == ALLOWED


LINES = (OrderLine("p1", "s1", "t", 2, 1000), OrderLine("p2", "s2", "t", 1, 555))


def test_flat_shipping_is_free_from_the_threshold() -> None:
    rules = Rules(ShippingRule(FLAT, 499, 0, 2555))
    assert totals("USD", LINES, {}, rules, "US", "").shipping_minor == 0
    assert totals("USD", LINES[:1], {}, rules, "US", "").shipping_minor == 499


def test_weight_shipping_charges_every_started_kilogram() -> None:
    rules = Rules(ShippingRule(WEIGHT, 100, 50, 0))
    assert totals("USD", LINES, {"p1": 500, "p2": 1}, rules, "US", "").shipping_minor == 100 + 2 * 50
    assert totals("USD", LINES, {}, rules, "US", "").shipping_minor == 100


def test_tax_uses_the_region_rate_else_the_country_rate_and_rounds_half_up_once() -> None:
    rules = Rules(tax_rates=(TaxRate("US", "", 500), TaxRate("US", "NY", 888)))
    assert totals("USD", LINES, {}, rules, "US", "NY").tax_minor == round_bps(2555, 888) == 227  # 226.884
    assert totals("USD", LINES, {}, rules, "US", "TX").tax_minor == 128  # 127.75
    assert totals("USD", LINES, {}, rules, "DE", "").tax_minor == 0
    assert round_bps(1, 5000) == 1 and round_bps(1, 4999) == 0


def test_a_return_without_lines_returns_everything_and_over_returning_is_refused() -> None:
    assert validation.return_request("r", [], LINES, "") == (ReturnLine("p1", 2), ReturnLine("p2", 1))
    with pytest.raises(InvalidArgument) as caught:
        validation.return_request("r", [ReturnLine("p1", 1), ReturnLine("p1", 1)], LINES, "")
    assert [v.field for v in caught.value.violations] == ["lines[1].product_id"]
