"""Product ids: "prd_" + 26 Crockford base32 characters encoding a 48-bit
millisecond timestamp then 80 random bits (a ULID), so ids sort by creation time
and byte-wise order is the order of the keyset pagination."""

from __future__ import annotations

import re
import secrets
import time

from services.runtime.errors import InvalidArgument, NotFound

PREFIX = "prd_"
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PRODUCT_ID = re.compile(r"^prd_[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def new_product_id(now_ms: int | None = None, random_bits: int | None = None) -> str:
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = secrets.randbits(80) if random_bits is None else random_bits
    value = (ms & (2**48 - 1)) << 80 | (rand & (2**80 - 1))
    chars = [_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5)]
    return PREFIX + "".join(chars)


def is_product_id(value: str) -> bool:
    """Only well-formed ids reach the database; anything else is simply not found."""
    return PRODUCT_ID.fullmatch(value) is not None



def product_not_found(product_id: str) -> NotFound:
    return NotFound("product not found", reason="PRODUCT_NOT_FOUND", metadata={"product_id": product_id[:64]})


def requested_product_id(value: str, field: str = "product_id") -> str:
    """A product id as a request names it: required, and a malformed one is simply not found."""
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not is_product_id(value):
        raise product_not_found(value)
    return value
