"""ListOrders paging: newest first (order ids are time-ordered), opaque page
tokens holding the last id of the previous page and a fingerprint of the filters."""

from __future__ import annotations

from services.order.domain.ids import is_order_id
from services.runtime import paging

page_size = paging.page_size
fingerprint = paging.fingerprint


def encode_token(last_id: str, made_for: str) -> str:
    return paging.encode_token(last_id, made_for)


def decode_token(token: str, expected: str) -> str | None:
    return paging.decode_token(token, filters=expected, valid_id=is_order_id, listing="ListOrders")
