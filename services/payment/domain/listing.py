"""ListPayments: filters, page size (AIP-158) and opaque page tokens.

Payments are listed newest first (payment ids are time-ordered, so by id
descending). A page token is base64url JSON of the last id of the previous page
and a fingerprint of the filters it was made for; it is only accepted with the
same filters.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.payment.domain.ids import is_payment_id
from services.payment.domain.payment import PaymentStatus
from services.payment.domain.requests import ORDER_ID, ORDER_ID_RULE
from services.runtime import paging
from services.runtime.errors import InvalidArgument


@dataclass(frozen=True)
class PaymentFilter:
    order_id: str  # "": every order
    status: PaymentStatus | None

    def fingerprint(self) -> str:
        return paging.fingerprint(self.order_id, self.status.value if self.status else "")


@dataclass(frozen=True)
class ListQuery:
    filter: PaymentFilter
    limit: int
    before: str | None  # payment_id the page continues below


def payment_filter(order_id: str, status: str) -> PaymentFilter:
    """``status`` is the enum name without its prefix, "UNSPECIFIED", or an unknown number's digits."""
    if order_id and not ORDER_ID.fullmatch(order_id):
        raise InvalidArgument.field("order_id", ORDER_ID_RULE)
    if status == "UNSPECIFIED":
        return PaymentFilter(order_id, None)
    try:
        return PaymentFilter(order_id, PaymentStatus[status])
    except KeyError:
        raise InvalidArgument.field("status", "must be one of the PaymentStatus values") from None


page_size = paging.page_size
MAX_PAGE_SIZE = paging.MAX_PAGE_SIZE


def encode_token(before: str, made_for: PaymentFilter) -> str:
    return paging.encode_token(before, made_for.fingerprint())


def decode_token(token: str, expected: PaymentFilter) -> str | None:
    return paging.decode_token(token, filters=expected.fingerprint(), valid_id=is_payment_id, listing="ListPayments")


def list_query(filter_: PaymentFilter, size: int, token: str) -> ListQuery:
    return ListQuery(filter_, page_size(size), decode_token(token, filter_))
