"""Order ids: "ord_" + a ULID (48-bit milliseconds then 80 random bits, Crockford
base32), so ids sort by creation time: newest first is order_id descending."""

from __future__ import annotations

import re
import secrets
import time

from services.runtime.errors import InvalidArgument, NotFound

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ORDER_ID = re.compile(r"^ord_[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def new_order_id() -> str:
    value = (time.time_ns() // 1_000_000 & (2**48 - 1)) << 80 | secrets.randbits(80)
    return "ord_" + "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def is_order_id(value: str) -> bool:
    return ORDER_ID.fullmatch(value) is not None


def order_not_found(order_id: str) -> NotFound:
    return NotFound("order not found", reason="ORDER_NOT_FOUND", metadata={"order_id": order_id[:64]})


def requested_order_id(value: str) -> str:
    """Required; a malformed id is simply not found."""
    if not value:
        raise InvalidArgument.field("order_id", "is required")
    if not is_order_id(value):
        raise order_not_found(value)
    return value
