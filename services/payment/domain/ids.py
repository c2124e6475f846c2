"""Payment and refund ids: a prefix and a ULID (48-bit milliseconds then 80 random
bits, Crockford base32), so ids sort by creation time byte-wise."""

from __future__ import annotations

import re
import secrets
import time

from services.runtime.errors import InvalidArgument, NotFound

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PAYMENT_ID = re.compile(r"^pay_[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def _ulid(now_ms: int | None = None, random_bits: int | None = None) -> str:
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = secrets.randbits(80) if random_bits is None else random_bits
    value = (ms & (2**48 - 1)) << 80 | (rand & (2**80 - 1))
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_payment_id() -> str:
    return "pay_" + _ulid()


def new_refund_id() -> str:
    return "rfd_" + _ulid()


def is_payment_id(value: str) -> bool:
    return PAYMENT_ID.fullmatch(value) is not None


def payment_not_found(payment_id: str) -> NotFound:
    return NotFound("payment not found", reason="PAYMENT_NOT_FOUND", metadata={"payment_id": payment_id[:64]})


def requested_payment_id(value: str, field: str = "payment_id") -> str:
    """Required; a malformed id is simply not found."""
    if not value:
        raise InvalidArgument.field(field, "is required")
    if not is_payment_id(value):
        raise payment_not_found(value)
    return value
