"""A stored cart priced with the catalog's current products: line totals and the
subtotal in integer minor units, in the cart's one currency. A line shows only what
its shopper may see of the product (nothing of a draft)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from services.cart.domain.cart import Line, StoredCart
from services.cart.domain.catalog import Money, Product, shown


@dataclass(frozen=True)
class PricedLine:
    line: Line
    product: Product | None
    unavailable_reason: str  # "" when the line can be bought

    @property
    def line_total(self) -> Money | None:
        if self.unavailable_reason or self.product is None:
            return None
        price = self.product.price
        return Money(price.currency_code, price.amount_minor * self.line.quantity)


@dataclass(frozen=True)
class PricedCart:
    cart_id: str  # "" when the shopper never had a cart
    customer_id: str
    currency_code: str
    lines: tuple[PricedLine, ...]
    unavailable: tuple[PricedLine, ...]
    update_time: datetime | None

    @property
    def subtotal(self) -> Money:
        return Money(self.currency_code, sum(line.line_total.amount_minor for line in self.lines
                                             if line.line_total is not None))

    @property
    def item_count(self) -> int:
        return sum(line.line.quantity for line in self.lines)


def unavailable_reason(product: Product | None, currency_code: str) -> str:
    product = shown(product)
    if product is None:
        return "PRODUCT_NOT_FOUND"
    if not product.active:
        return "PRODUCT_NOT_AVAILABLE"
    if product.price.currency_code != currency_code:
        return "CURRENCY_MISMATCH"
    return ""


def _priced_line(line: Line, product: Product | None, currency_code: str) -> PricedLine:
    return PricedLine(line, product, unavailable_reason(product, currency_code))


def priced(customer_id: str, cart: StoredCart | None, products: Mapping[str, Product | None]) -> PricedCart:
    if cart is None:
        return PricedCart("", customer_id, "", (), (), None)
    lines = [_priced_line(line, shown(products.get(line.product_id)), cart.currency_code)
             for line in sorted(cart.lines, key=lambda line: line.position)]
    return PricedCart(cart.cart_id, cart.customer_id, cart.currency_code,
                      tuple(line for line in lines if not line.unavailable_reason),
                      tuple(line for line in lines if line.unavailable_reason), cart.update_time)
