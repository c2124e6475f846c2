"""Checks of request fields, before anything is read or written."""

from __future__ import annotations

from services.cart.domain.cart import MAX_QUANTITY
from services.runtime.errors import InvalidArgument


def requested_quantity(value: int, field: str = "quantity") -> int:
    if not 1 <= value <= MAX_QUANTITY:
        raise InvalidArgument.field(field, f"must be between 1 and {MAX_QUANTITY} (got {value})")
    return value
