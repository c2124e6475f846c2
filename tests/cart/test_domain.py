"""Pure rules of the cart: limits, what a confirmed order takes away, pricing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.cart.domain.cart import Line, StoredCart, quantity_after_adding, remaining_after_order
from services.cart.domain.catalog import Money, Product, Status
from services.cart.domain.pricing import priced
from services.runtime.errors import FailedPrecondition

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def cart(*lines: tuple[str, int]) -> StoredCart:
    return StoredCart("crt_1", "alice", "USD" if lines else "",
                      tuple(Line(pid, qty, i) for i, (pid, qty) in enumerate(lines, 1)), NOW)


def product(pid: str, amount: int, currency: str = "USD", active: bool = True) -> Product:
    return Product(pid, f"SKU-{pid}", pid.title(), Money(currency, amount),
                   Status.ACTIVE if active else Status.ARCHIVED)


def test_a_hundred_and_first_line_is_refused() -> None:
    full = cart(*((f"p{i}", 1) for i in range(100)))
    with pytest.raises(FailedPrecondition) as err:
        quantity_after_adding(full, "another", 1)
    assert err.value.reason == "CART_FULL"
    assert quantity_after_adding(full, "p5", 2) == 3


def test_a_confirmed_order_takes_away_the_units_it_bought_and_leaves_later_ones() -> None:
    before = cart(("shoe", 3), ("sock", 2), ("hat", 1))
    after = remaining_after_order(before, {"shoe": 2, "sock": 2, "gone": 4})
    assert [(line.product_id, line.quantity) for line in after.lines] == [("shoe", 1), ("hat", 1)]
    assert after.currency_code == "USD"
    emptied = remaining_after_order(before, {"shoe": 3, "sock": 2, "hat": 1})
    assert emptied.lines == () and emptied.currency_code == ""


def test_pricing_multiplies_in_minor_units_and_sets_unsellable_lines_apart() -> None:
    result = priced("alice", cart(("shoe", 3), ("old", 1), ("euro", 2), ("gone", 1)), {
        "shoe": product("shoe", 1999), "old": product("old", 5, active=False),
        "euro": product("euro", 100, currency="EUR"), "gone": None})
    assert [(line.line.product_id, line.line_total) for line in result.lines] == [("shoe", Money("USD", 5997))]
    assert [(line.line.product_id, line.unavailable_reason) for line in result.unavailable] == [
        ("old", "PRODUCT_NOT_AVAILABLE"), ("euro", "CURRENCY_MISMATCH"), ("gone", "PRODUCT_NOT_FOUND")]
    assert result.subtotal == Money("USD", 5997) and result.item_count == 3
