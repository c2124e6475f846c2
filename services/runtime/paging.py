"""Page size (AIP-158) and opaque keyset page tokens, the same for every List call.

A token is base64url JSON of the id the next page continues from and a fingerprint
of the filters it was made for; it is only accepted with the same filters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from typing import Any

from services.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
TOKEN_MAX = 200


def page_size(value: int) -> int:
    """0 means the default; above the maximum is clamped to it; negative is refused."""
    if value < 0:
        raise InvalidArgument.field("page_size", f"must not be negative (0 means {DEFAULT_PAGE_SIZE})")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def fingerprint(*filters: object) -> str:
    return hashlib.sha256(json.dumps(filters, separators=(",", ":")).encode()).hexdigest()[:16]


def pack(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def unpack(token: str, listing: str, max_len: int = TOKEN_MAX) -> Any:
    """The JSON a token carries; INVALID_ARGUMENT page_token for anything we did not hand out
    (``max_len``: for tokens that carry a sort key, e.g. a title)."""
    bad = InvalidArgument.field("page_token", f"is not a page token from a previous {listing} response")
    if len(token) > max_len:
        raise bad
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad from exc


def encode_token(last_id: str, filters: str) -> str:
    return pack({"a": last_id, "f": filters})


def decode_token(token: str, *, filters: str, valid_id: Callable[[str], bool], listing: str) -> str | None:
    """The id the page continues from; None for the first page."""
    if not token:
        return None
    data = unpack(token, listing)
    if not isinstance(data, dict) or not isinstance(data.get("a"), str) or not valid_id(data["a"]):
        raise InvalidArgument.field("page_token", f"is not a page token from a previous {listing} response")
    if data.get("f") != filters:
        raise InvalidArgument.field("page_token",
                                    "was made for other filters; send the same filters as the first page, or no token")
    last: str = data["a"]
    return last
