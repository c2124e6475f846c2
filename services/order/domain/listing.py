"""ListOrders paging: newest first (order ids are time-ordered), opaque page
tokens holding the last id of the previous page and a fingerprint of the filters."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json

from services.order.domain.ids import is_order_id
from services.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100


def page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgument.field("page_size", f"must not be negative (0 means {DEFAULT_PAGE_SIZE})")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def fingerprint(*filters: str) -> str:
    return hashlib.sha256(json.dumps(filters).encode()).hexdigest()[:16]


def encode_token(last_id: str, made_for: str) -> str:
    raw = json.dumps({"a": last_id, "f": made_for}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, expected: str) -> str | None:
    if not token:
        return None
    bad = InvalidArgument.field("page_token", "is not a page token from a previous ListOrders response "
                                              "with the same filters")
    if len(token) > 200:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise bad from exc
    if not isinstance(data, dict) or not isinstance(data.get("a"), str) or not is_order_id(data["a"]) \
            or data.get("f") != expected:
        raise bad
    last: str = data["a"]
    return last
