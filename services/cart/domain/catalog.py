"""What the cart knows of a catalog product, and what a shopper may see of it.

The cart keeps a copy of the catalog's products in every status (a draft can be
published later); a shopper sees only what the catalog's GetProduct shows them:
ACTIVE and ARCHIVED products. A draft does not exist for shoppers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from services.cart.domain.ids import product_not_found
from services.runtime.errors import FailedPrecondition

# The oldest version: a product the catalog sent without an update_time.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_WEIGHT_GRAMS = 2**63 - 1


class Status(Enum):
    """The catalog's product status, by its name there."""

    UNSPECIFIED = "UNSPECIFIED"
    DRAFT = "DRAFT"
    ACTIVE = "ACTIVE"
    ARCHIVED = "ARCHIVED"


SHOPPER_VISIBLE = frozenset({Status.ACTIVE, Status.ARCHIVED})


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
    status: Status
    weight_grams: int = 0
    version: datetime = EPOCH  # the catalog's update_time of this state

    @property
    def active(self) -> bool:
        """For sale."""
        return self.status is Status.ACTIVE


@dataclass(frozen=True)
class Offer:
    """What the catalog says of one product right now, for one shopper: the product
    (None when it does not exist for them) and the units that can be sold."""

    product: Product | None
    available: int


def shown(product: Product | None) -> Product | None:
    """The product as a shopper may see it: None for one that does not exist for them."""
    return product if product is not None and product.status in SHOPPER_VISIBLE else None


def weight_grams(attributes: Mapping[str, str]) -> int:
    """The "weight_grams" attribute (the order service's rule): its digits, else 0;
    0 too for digits int() does not read (e.g. "²") or beyond 64 bits."""
    raw = attributes.get("weight_grams", "").strip()
    if not raw.isdigit():
        return 0
    try:
        grams = int(raw)
    except ValueError:
        return 0
    return grams if grams <= MAX_WEIGHT_GRAMS else 0


def sellable(product_id: str, product: Product | None, cart_currency: str) -> Product:
    """The product, if it may be put in a cart whose currency is ``cart_currency`` ("" = any)."""
    product = shown(product)
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
