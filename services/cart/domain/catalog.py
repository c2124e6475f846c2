"""What the cart needs to know of a catalog product, read when the cart is."""

from __future__ import annotations

from dataclasses import dataclass

from services.cart.domain.ids import product_not_found
from services.runtime.errors import FailedPrecondition


@dataclass(frozen=True)
class Money:
    currency_code: str
    amount_minor: int


@dataclass(frozen=True)
class Product:
    product_id: str
    sku: str
    title: str
    price: Money
    active: bool  # for sale (not archived)


def sellable(product_id: str, product: Product | None, cart_currency: str) -> Product:
    """The product, if it may be put in a cart whose currency is ``cart_currency`` ("" = any)."""
    if product is None:
        raise product_not_found(product_id)
    if not product.active:
        raise FailedPrecondition("the product is no longer sold", reason="PRODUCT_NOT_AVAILABLE",
                                 metadata={"product_id": product_id})
    if cart_currency and product.price.currency_code != cart_currency:
        raise FailedPrecondition(
            f"the cart is in {cart_currency}; this product is priced in {product.price.currency_code}",
            reason="CURRENCY_MISMATCH",
            metadata={"product_id": product_id, "cart_currency": cart_currency,
                      "product_currency": product.price.currency_code})
    return product


def check_stock(product_id: str, wanted: int, available: int) -> None:
    if wanted > available:
        raise FailedPrecondition(
            f"only {max(available, 0)} units can be sold right now", reason="INSUFFICIENT_STOCK",
            metadata={"product_id": product_id, "available": str(max(available, 0)), "requested": str(wanted)})
