"""A shopper's cart as stored: product ids and quantities, nothing priced.

One open cart per subject (a user id, or "guest:<id>") in a tenant. The rules
of changing it live here; prices come from the catalog when it is read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from services.runtime.errors import FailedPrecondition, NotFound

MAX_QUANTITY = 1000
MAX_LINES = 100


@dataclass(frozen=True)
class Line:
    product_id: str
    quantity: int
    position: int  # order in which lines were first added


@dataclass(frozen=True)
class StoredCart:
    cart_id: str
    customer_id: str
    currency_code: str  # of the first product added to the empty cart; "" while empty
    lines: tuple[Line, ...]
    update_time: datetime

    def line(self, product_id: str) -> Line | None:
        return next((line for line in self.lines if line.product_id == product_id), None)

    def with_line(self, product_id: str, quantity: int) -> StoredCart:
        """The cart with the line of ``product_id`` at ``quantity`` (added at the end if new)."""
        current = self.line(product_id)
        if current is not None:
            lines = tuple(replace(line, quantity=quantity) if line.product_id == product_id else line
                          for line in self.lines)
            return replace(self, lines=lines)
        position = max((line.position for line in self.lines), default=0) + 1
        return replace(self, lines=(*self.lines, Line(product_id, quantity, position)))

    def without(self, product_ids: set[str]) -> StoredCart:
        lines = tuple(line for line in self.lines if line.product_id not in product_ids)
        return replace(self, lines=lines, currency_code=self.currency_code if lines else "")


def quantity_after_adding(cart: StoredCart, product_id: str, quantity: int) -> int:
    """The line's quantity once ``quantity`` units are added; refused beyond the limits."""
    current = cart.line(product_id)
    if current is None:
        if len(cart.lines) >= MAX_LINES:
            raise FailedPrecondition(f"a cart holds at most {MAX_LINES} lines", reason="CART_FULL",
                                     metadata={"max_lines": str(MAX_LINES)})
        return quantity
    total = current.quantity + quantity
    if total > MAX_QUANTITY:
        raise FailedPrecondition(f"a line holds at most {MAX_QUANTITY} units", reason="QUANTITY_LIMIT",
                                 metadata={"product_id": product_id, "quantity": str(current.quantity),
                                           "max_quantity": str(MAX_QUANTITY)})
    return total


def existing_line(cart: StoredCart | None, product_id: str) -> Line:
    line = None if cart is None else cart.line(product_id)
    if line is None:
        raise NotFound("the product is not in the cart", reason="LINE_NOT_FOUND",
                       metadata={"product_id": product_id[:64]})
    return line


def remaining_after_order(cart: StoredCart, ordered: dict[str, int]) -> StoredCart:
    """The cart once an order bought ``ordered`` units (product id -> quantity) of it:
    those units leave; units added since the order was placed stay."""
    gone = {pid for pid, qty in ordered.items() if (line := cart.line(pid)) is not None and line.quantity <= qty}
    kept = cart.without(gone)
    for pid, qty in ordered.items():
        line = kept.line(pid)
        if line is not None:
            kept = kept.with_line(pid, line.quantity - qty)
    return kept
