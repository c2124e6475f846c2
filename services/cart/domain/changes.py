"""The changes a shopper makes to their cart: pure functions of the cart as locked and
of what the catalog said of the product just before (an ``Offer``), asked with no
lock held. Each returns the cart as it should be stored, or raises the refusal."""

from __future__ import annotations

from dataclasses import replace

from services.cart.domain.cart import StoredCart, existing_line, quantity_after_adding
from services.cart.domain.catalog import Offer, check_stock, sellable


class OfferNeeded(Exception):
    """The change cannot be decided without what the catalog says of ``product_id`` now
    (the cart moved since it was first looked at): ask the catalog, then try again."""

    def __init__(self, product_id: str) -> None:
        super().__init__(product_id)
        self.product_id = product_id


def added(cart: StoredCart, product_id: str, quantity: int, offer: Offer) -> StoredCart:
    """``quantity`` more units of an active product in the cart's currency (any, while
    the cart is empty: then the cart takes the product's), within the line limits and
    the available stock."""
    product = sellable(product_id, offer.product, cart.currency_code)
    wanted = quantity_after_adding(cart, product_id, quantity)
    check_stock(product_id, wanted, offer.available)
    return replace(cart.with_line(product_id, wanted), currency_code=product.price.currency_code)


def updated(cart: StoredCart | None, product_id: str, quantity: int, offer: Offer | None) -> StoredCart:
    """The line set to ``quantity``: raising it is checked like adding, lowering always works."""
    line = existing_line(cart, product_id)
    assert cart is not None
    if quantity > line.quantity:
        if offer is None:
            raise OfferNeeded(product_id)
        sellable(product_id, offer.product, cart.currency_code)
        check_stock(product_id, quantity, offer.available)
    return cart.with_line(product_id, quantity)


def raises(line_quantity: int, quantity: int) -> bool:
    """Whether setting a line of ``line_quantity`` units (0: no line) to ``quantity``
    needs the catalog's word (an existing line raised)."""
    return 0 < line_quantity < quantity


def removed(cart: StoredCart | None, product_id: str) -> StoredCart:
    existing_line(cart, product_id)
    assert cart is not None
    return cart.without({product_id})


def cleared(cart: StoredCart | None) -> StoredCart | None:
    if cart is None or not cart.lines:
        return cart
    return cart.without({line.product_id for line in cart.lines})
