"""ListProducts: its filters, page size (AIP-158) and opaque page tokens.

Products are listed in product_id order (ids are time-ordered: oldest first).
A page token is base64url JSON holding the last id of the previous page and a
fingerprint of the filters it was made for, so a token is only accepted with
the same filters (page_size may change between pages).
"""

from __future__ import annotations

from dataclasses import dataclass

from services.catalog.domain.ids import is_product_id
from services.catalog.domain.product import CATEGORY_MAX, PRICE_MAX, ProductStatus
from services.runtime import paging
from services.runtime.validation import Violations

QUERY_MAX = 200


@dataclass(frozen=True)
class ProductFilter:
    query: str
    category: str
    min_price_minor: int  # 0: no lower bound
    max_price_minor: int  # 0: no upper bound
    statuses: frozenset[ProductStatus]

    def fingerprint(self) -> str:
        return paging.fingerprint(self.query, self.category, self.min_price_minor, self.max_price_minor,
                                  sorted(s.value for s in self.statuses))


@dataclass(frozen=True)
class ListQuery:
    filter: ProductFilter
    limit: int
    after: str | None  # product_id the page starts after


def product_filter(query: str, category: str, min_price_minor: int, max_price_minor: int,
                   statuses: frozenset[ProductStatus]) -> ProductFilter:
    v = Violations()
    v.text("query", query, max_len=QUERY_MAX, required=False)
    v.text("category", category, max_len=CATEGORY_MAX, required=False)
    for name, bound in (("min_price_minor", min_price_minor), ("max_price_minor", max_price_minor)):
        if bound < 0:
            v.add(name, "must not be negative (0 means no bound)")
        elif bound > PRICE_MAX:
            v.add(name, f"must be at most {PRICE_MAX}")
    if not v and min_price_minor and max_price_minor and min_price_minor > max_price_minor:
        v.add("min_price_minor", "must not be greater than max_price_minor")
    v.raise_if_any()
    return ProductFilter(query, category, min_price_minor, max_price_minor, statuses)


def encode_token(after: str, made_for: ProductFilter) -> str:
    return paging.encode_token(after, made_for.fingerprint())


def decode_token(token: str, expected: ProductFilter) -> str | None:
    """The product_id the page starts after; None for the first page."""
    return paging.decode_token(token, filters=expected.fingerprint(), valid_id=is_product_id, listing="ListProducts")


def list_query(filter_: ProductFilter, size: int, token: str) -> ListQuery:
    limit = paging.page_size(size)
    return ListQuery(filter_, limit, decode_token(token, filter_))
