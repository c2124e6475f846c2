"""Checks of request fields, before anything is read or written."""

from __future__ import annotations

import re

from services.cart.domain.cart import MAX_QUANTITY
from services.cart.domain.catalog import product_not_found
from services.runtime.errors import InvalidArgument

# Catalog ids are "prd_" + 26 base32 characters; anything unlike an id cannot be in a cart.
_PLAUSIBLE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def requested_product_id(value: str, field: str = "product_id") -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not _PLAUSIBLE_ID.fullmatch(value):
        raise product_not_found(value)
    return value


def requested_quantity(value: int, field: str = "quantity") -> int:
    if not 1 <= value <= MAX_QUANTITY:
        raise InvalidArgument.field(field, f"must be between 1 and {MAX_QUANTITY} (got {value})")
    return value

