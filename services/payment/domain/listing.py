"""ListPayments: filters, page size (AIP-158) and opaque page tokens.

Payments are listed newest first (payment ids are time-ordered, so by id
descending). A page token is base64url JSON of the last id of the previous page
and a fingerprint of the filters it was made for; it is only accepted with the
same filters.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from services.payment.domain.ids import is_payment_id
from services.payment.domain.payment import PaymentStatus
from services.payment.domain.requests import ORDER_ID
from services.runtime.errors import InvalidArgument

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
_TOKEN_MAX = 200
_BAD_TOKEN = "is not a page token from a previous ListPayments response"


@dataclass(frozen=True)
class PaymentFilter:
    order_id: str  # "": every order
    status: PaymentStatus | None

    def fingerprint(self) -> str:
        canonical = json.dumps([self.order_id, self.status.value if self.status else ""], separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ListQuery:
    filter: PaymentFilter
    limit: int
    before: str | None  # payment_id the page continues below


def payment_filter(order_id: str, status: str) -> PaymentFilter:
    """``status`` is the enum name without its prefix, "UNSPECIFIED", or an unknown number's digits."""
    if order_id and not ORDER_ID.fullmatch(order_id):
        raise InvalidArgument.field("order_id", "must be 1-64 of A-Z a-z 0-9 _ . : -")
    if status == "UNSPECIFIED":
        return PaymentFilter(order_id, None)
    try:
        return PaymentFilter(order_id, PaymentStatus[status])
    except KeyError:
        raise InvalidArgument.field("status", "must be one of the PaymentStatus values") from None


def page_size(value: int) -> int:
    if value < 0:
        raise InvalidArgument.field("page_size", f"must not be negative (0 means {DEFAULT_PAGE_SIZE})")
    return min(value or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(before: str, made_for: PaymentFilter) -> str:
    raw = json.dumps({"b": before, "f": made_for.fingerprint()}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, expected: PaymentFilter) -> str | None:
    if not token:
        return None
    if len(token) > _TOKEN_MAX:
        raise InvalidArgument.field("page_token", _BAD_TOKEN)
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument.field("page_token", _BAD_TOKEN) from exc
    if not isinstance(data, dict) or not isinstance(data.get("b"), str) or not is_payment_id(data["b"]):
        raise InvalidArgument.field("page_token", _BAD_TOKEN)
    if data.get("f") != expected.fingerprint():
        raise InvalidArgument.field("page_token", "was made for other filters; send the same filters, or no token")
    before: str = data["b"]
    return before


def list_query(filter_: PaymentFilter, size: int, token: str) -> ListQuery:
    return ListQuery(filter_, page_size(size), decode_token(token, filter_))
