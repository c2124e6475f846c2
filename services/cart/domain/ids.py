"""Cart ids: "crt_" + 26 Crockford base32 characters (a millisecond timestamp,
then 80 random bits), so they sort by creation time."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_cart_id() -> str:
    value = (time.time_ns() // 1_000_000 & (2**48 - 1)) << 80 | secrets.randbits(80)
    return "crt_" + "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))
