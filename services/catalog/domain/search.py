"""ListProducts as a search: text, filter, order, facets, and keyset page tokens.

- ``query``: full text (``websearch_to_tsquery`` syntax: words, "a phrase", OR, -word).
- ``filter``: AIP-160 (domain/filtering.py). The deprecated ``category``,
  ``min_price_minor``, ``max_price_minor`` fields still work: they are ANDed to it.
- ``order_by``: AIP-132, one key: ``relevance`` (rank: 1 is the best, so ascending is
  best first; needs a query), ``price``, ``create_time``, ``title`` (case-insensitive),
  each ``asc`` (default) or ``desc``. No order_by: relevance with a query, else oldest
  first (product_id, the order pages always had).
- Page tokens carry the last row's sort key and id (keyset: a write between two pages
  moves no other row across the cursor), how many results were returned before (the
  relevance order stops after RELEVANCE_MAX), and a fingerprint of the text, filter,
  visibility and order they were made for: any change of those refuses the token.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.catalog.domain import filtering
from services.catalog.domain.filtering import AllOf, Compare, Expr, Member
from services.catalog.domain.ids import is_product_id
from services.catalog.domain.product import (
    ATTRIBUTE_KEY_MAX,
    CATEGORY_MAX,
    PRICE_MAX,
    TITLE_MAX,
    ProductStatus,
    requested_status,
)
from services.catalog.domain.visibility import SHOPPER_VISIBLE, listed_statuses, sees_every_status
from services.runtime import paging
from services.runtime.context import Caller
from services.runtime.errors import InvalidArgument
from services.runtime.validation import Violations

QUERY_MAX = 200
# The relevance order returns this many results at most (like every search engine does):
# the best ones. Sort by another key, or narrow the filter, to go through more.
RELEVANCE_MAX = 10_000
# A token holds the sort key: a title sorted on is up to TITLE_MAX characters, each up to 12 bytes
# in JSON (an emoji is two \u escapes), plus ~300 of the rest, then base64 (4/3).
TOKEN_MAX = 4 * (TITLE_MAX * 12 + 300) // 3
FACETS_MAX = 10
PRICE_BUCKETS_MAX = 20
DEFAULT_PRICE_BUCKETS = (1000, 2500, 5000, 10000, 25000, 50000, 100000)
LISTING = "ListProducts"


class SortKey(enum.Enum):
    ID = "product_id"  # no order_by and no query: oldest first, as pages always were
    RELEVANCE = "relevance"
    PRICE = "price"
    CREATE_TIME = "create_time"
    TITLE = "title"


@dataclass(frozen=True)
class Ordering:
    key: SortKey
    descending: bool = False

    def __str__(self) -> str:
        return self.key.value + (" desc" if self.descending else "")


_ORDER_NAMES = {"relevance": SortKey.RELEVANCE, "price": SortKey.PRICE, "price.amount_minor": SortKey.PRICE,
                "create_time": SortKey.CREATE_TIME, "title": SortKey.TITLE}
_ORDER_ITEM = re.compile(r"^\s*([a-z_.]+)(?:\s+(asc|desc))?\s*$")


def ordering(order_by: str, has_query: bool) -> Ordering:
    """The order an ``order_by`` asks for (AIP-132), or the default."""
    field = "order_by"
    if len(order_by) > 100:
        raise InvalidArgument.field(field, "must be at most 100 characters")
    if not order_by.strip():
        return Ordering(SortKey.RELEVANCE if has_query else SortKey.ID)
    items = order_by.split(",")
    if len(items) > 1:
        raise InvalidArgument.field(field, "sorts by one field (relevance, price, create_time or title), "
                                           "then by product id: e.g. 'price desc'")
    match = _ORDER_ITEM.fullmatch(items[0])
    if match is None or match.group(1) not in _ORDER_NAMES:
        raise InvalidArgument.field(field, "must be one of relevance, price, create_time, title, optionally "
                                           "followed by asc or desc (e.g. 'price desc')")
    key = _ORDER_NAMES[match.group(1)]
    if key is SortKey.RELEVANCE and not has_query:
        raise InvalidArgument.field(field, "relevance needs a query")
    return Ordering(key, match.group(2) == "desc")


@dataclass(frozen=True)
class FacetSpec:
    category: bool
    attributes: tuple[str, ...]
    price_buckets: tuple[int, ...]  # ascending upper bounds (exclusive); empty: no price facet

    @property
    def wanted(self) -> bool:
        return self.category or bool(self.attributes) or bool(self.price_buckets)




def facet_spec(facets: list[str], price_buckets: list[int]) -> FacetSpec:
    v = Violations()
    if len(facets) > FACETS_MAX:
        v.add("facets", f"at most {FACETS_MAX} facets")
    category, price, keys = False, False, []
    for name in facets[:FACETS_MAX]:
        if name == "category":
            category = True
        elif name == "price":
            price = True
        elif name.startswith("attributes.") and 0 < len(name.removeprefix("attributes.")) <= ATTRIBUTE_KEY_MAX:
            key = name.removeprefix("attributes.")
            if key not in keys:
                keys.append(key)
        else:
            v.add("facets", f"{name[:70]!r}: a facet is category, price or attributes.<key>")
    bounds = tuple(price_buckets)
    if bounds:
        if len(bounds) > PRICE_BUCKETS_MAX:
            v.add("price_buckets", f"at most {PRICE_BUCKETS_MAX} bounds")
        elif any(b <= 0 or b > PRICE_MAX for b in bounds) or list(bounds) != sorted(set(bounds)):
            v.add("price_buckets", f"strictly ascending amounts in minor units, each 1-{PRICE_MAX}")
        elif not price:
            v.add("price_buckets", "go with the price facet (facets: price)")
    v.raise_if_any()
    return FacetSpec(category, tuple(keys), (bounds or DEFAULT_PRICE_BUCKETS) if price else ())


@dataclass(frozen=True)
class Search:
    """One ListProducts request, validated: what matches, in which order."""

    text: str
    filter: Expr | None
    statuses: frozenset[ProductStatus]
    ordering: Ordering

    def fingerprint(self) -> str:
        return paging.fingerprint(self.text, filtering.canonical(self.filter),
                                  sorted(s.value for s in self.statuses), str(self.ordering))


def legacy_filter(category: str, min_price_minor: int, max_price_minor: int) -> list[Expr]:
    """The deprecated fields as the filter restrictions they stand for."""
    v = Violations()
    v.text("category", category, max_len=CATEGORY_MAX, required=False)
    for name, bound in (("min_price_minor", min_price_minor), ("max_price_minor", max_price_minor)):
        if bound < 0:
            v.add(name, "must not be negative (0 means no bound)")
        elif bound > PRICE_MAX:
            v.add(name, f"must be at most {PRICE_MAX}")
    if not v and min_price_minor and max_price_minor and min_price_minor > max_price_minor:
        v.add("min_price_minor", "must not be greater than max_price_minor")
    v.raise_if_any()
    found: list[Expr] = []
    if category:
        found.append(Compare(Member("category"), "=", category))
    if min_price_minor:
        found.append(Compare(Member("price"), ">=", min_price_minor))
    if max_price_minor:
        found.append(Compare(Member("price"), "<=", max_price_minor))
    return found


def search_text(query: str) -> str:
    v = Violations()
    v.text("query", query, max_len=QUERY_MAX, required=False)
    v.raise_if_any()
    return query.strip()


def combined(expr: Expr | None, more: list[Expr]) -> Expr | None:
    parts = ([expr] if expr is not None else []) + more
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


# --- page tokens --------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the row with this sort key and id."""

    key: Any  # int (price), datetime (create_time), str (lower(title)), int tier (relevance), None (id)
    product_id: str
    returned: int  # results handed out before the next page


def encode_token(search: Search, cursor: Cursor) -> str:
    key = cursor.key.isoformat() if isinstance(cursor.key, datetime) else cursor.key
    return paging.pack({"k": key, "a": cursor.product_id, "n": cursor.returned, "f": search.fingerprint()})


def decode_token(token: str, search: Search) -> Cursor | None:
    """The cursor of a token made for exactly this search; None for the first page."""
    if not token:
        return None
    data = paging.unpack(token, LISTING, max_len=TOKEN_MAX)
    bad = InvalidArgument.field("page_token", f"is not a page token from a previous {LISTING} response")
    if not isinstance(data, dict) or not isinstance(data.get("a"), str) or not is_product_id(data["a"]):
        raise bad
    if data.get("f") != search.fingerprint():
        raise InvalidArgument.field("page_token", "was made for another query, filter or order_by; send the same "
                                                  "ones as the first page, or no token")
    returned = data.get("n")
    if not isinstance(returned, int) or isinstance(returned, bool) or returned < 0:
        raise bad
    return Cursor(_key(data.get("k"), search.ordering.key, bad), data["a"], returned)


def _key(raw: Any, key: SortKey, bad: InvalidArgument) -> Any:
    if key is SortKey.ID:
        if raw is not None:
            raise bad
        return None
    if key in (SortKey.PRICE, SortKey.RELEVANCE):
        if not isinstance(raw, int) or isinstance(raw, bool) or not -PRICE_MAX <= raw <= PRICE_MAX:
            raise bad
        if key is SortKey.RELEVANCE and raw not in (1, 2):
            raise bad
        return raw
    if not isinstance(raw, str) or len(raw) > 1000:
        raise bad
    if key is SortKey.TITLE:
        return raw
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise bad from None
    if moment.tzinfo is None:
        raise bad
    return moment


def build(caller: Caller, query: str, filter_: str, order_by: str, category: str, min_price_minor: int,
          max_price_minor: int, status: str) -> Search:
    """A ListProducts request as a search; every field checked (INVALID_ARGUMENT names it)."""
    text = search_text(query)
    parsed = filtering.parse(filter_)
    legacy = legacy_filter(category, min_price_minor, max_price_minor)
    requested = requested_status(status, "status")
    statuses = listed_statuses(caller, requested)
    if requested is None and filtering.mentions_status(parsed) and not sees_every_status(caller):
        statuses = SHOPPER_VISIBLE  # the filter narrows them; drafts stay staff-only
    return Search(text, combined(parsed, legacy), statuses, ordering(order_by, bool(text)))


# --- facets -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FacetValue:
    value: str
    count: int
    filter: str  # the AIP-160 restriction that selects exactly these products
    min_price_minor: int = 0  # price buckets: [min, max); 0 = unbounded
    max_price_minor: int = 0


@dataclass(frozen=True)
class Facet:
    field: str  # category, price, attributes.<key>
    values: tuple[FacetValue, ...]


@dataclass(frozen=True)
class Facets:
    facets: tuple[Facet, ...]
    total: int
    estimated: bool  # counted on a sample of the catalog (more than FACET_EXACT_MAX matches)


def facets_of(spec: FacetSpec, total: int, categories: list[tuple[str, int]],
              attributes: dict[str, list[tuple[str, int]]], buckets: list[tuple[int, int]],
              estimated: bool) -> Facets:
    found: list[Facet] = []
    if spec.category:
        found.append(Facet("category", tuple(
            FacetValue(value, n, str(Compare(Member("category"), "=", value))) for value, n in categories)))
    if spec.price_buckets:
        found.append(Facet("price", tuple(_bucket(spec.price_buckets, number, n) for number, n in buckets if n)))
    for key in spec.attributes:
        member = Member("attribute", key)
        found.append(Facet(str(member), tuple(
            FacetValue(value, n, str(Compare(member, "=", value))) for value, n in attributes.get(key, []))))
    return Facets(tuple(found), total, estimated)


def _bucket(bounds: tuple[int, ...], number: int, count: int) -> FacetValue:
    """Bucket ``number`` of width_bucket: 0 is below the first bound, len(bounds) from the last on."""
    low = bounds[number - 1] if number > 0 else 0
    high = bounds[number] if number < len(bounds) else 0
    price = Member("price")
    parts = ([str(Compare(price, ">=", low))] if low else []) + ([str(Compare(price, "<", high))] if high else [])
    label = f"[{low},{high})" if high else f"[{low},)"
    return FacetValue(label, count, " AND ".join(parts), low, high)
