"""ListProducts: a page of a search (text, filter, order) and its facets, in one call.

A page is read in the caller's tenant schema only (``db.session(tenant)``): one
statement for the query's language and the widening of unknown words (and, when the filter
restricts attributes, one for how: which of its keys are common, and whether the products'
``attribute_pairs`` are complete; if they are not, the re-indexing that completes them is
started here, should no replica be running it), then the page
(store/pages.py: an estimate, then one or two bounded statements per relevance tier or
order) and, on a second connection at the same time, the facets (an estimate, then an
exact count or a sample). Answers are cached per replica (SearchCache) until the tenant's
next product write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.catalog.cache import SearchCache
from services.catalog.domain import search as domain
from services.catalog.domain.product import Product
from services.catalog.domain.search import Cursor, Facets, FacetSpec, Search, SortKey
from services.catalog.store import search as store
from services.runtime import paging
from services.runtime.context import Caller
from services.runtime.db import Database


@dataclass(frozen=True)
class ListRequest:
    """A ListProducts request, as it came (checked by ``domain.build`` and ``facet_spec``)."""

    query: str = ""
    filter: str = ""
    order_by: str = ""
    page_size: int = 0
    page_token: str = ""
    facets: tuple[str, ...] = ()
    price_buckets: tuple[int, ...] = ()
    # deprecated: the filter says it all
    category: str = ""
    min_price_minor: int = 0
    max_price_minor: int = 0
    status: str = "UNSPECIFIED"


@dataclass(frozen=True)
class Listing:
    products: Sequence[Product]
    next_page_token: str
    facets: Facets | None


class ProductSearch:
    def __init__(self, db: Database, cache: SearchCache, reindex: Callable[[str], None] = lambda _: None) -> None:
        """``reindex(tenant_id)``: resumes the tenant's unfinished re-indexing unless it runs here
        already (SearchLanguages.resume)."""
        self._db = db
        self._cache = cache
        self._reindex = reindex

    async def list_products(self, caller: Caller, tenant_id: str, request: ListRequest) -> Listing:
        search = domain.build(caller, request.query, request.filter, request.order_by, request.category,
                              request.min_price_minor, request.max_price_minor, request.status)
        spec = domain.facet_spec(list(request.facets), list(request.price_buckets))
        cursor = domain.decode_token(request.page_token, search)
        limit = paging.page_size(request.page_size)
        key = (search, request.page_token, limit, spec)
        cached = self._cache.get(tenant_id, key)
        if isinstance(cached, Listing):
            return cached
        generation = self._cache.generation(tenant_id)
        listing = await self._read(tenant_id, search, spec, cursor, limit)
        self._cache.put(tenant_id, key, listing, generation)
        return listing

    async def _read(self, tenant_id: str, search: Search, spec: FacetSpec, cursor: Cursor | None,
                    limit: int) -> Listing:
        returned = cursor.returned if cursor is not None else 0
        if search.ordering.key is SortKey.RELEVANCE:
            limit = max(0, min(limit, domain.RELEVANCE_MAX - returned))
        async with self._db.session(tenant_id) as session:
            text = await store.text_query(session, search.text)
            index = await store.attribute_index(session, search.filter)
        if store.has_attributes(search.filter) and not index.pairs:
            self._reindex(tenant_id)
        # The page and the facets at once, on two connections: the answer waits for the slower.
        result, counted = await asyncio.gather(self._page(tenant_id, search, text, cursor, limit, index),
                                               self._facets(tenant_id, search, text, spec, index))
        shown = result.found[:limit]
        capped = search.ordering.key is SortKey.RELEVANCE and returned + len(shown) >= domain.RELEVANCE_MAX
        token = ""
        if len(result.found) > limit and not capped:
            last = shown[-1]
            token = domain.encode_token(search, Cursor(last.cursor_key, last.product.product_id,
                                                       returned + len(shown)))
        elif result.resume is not None and not capped:  # a short page: more may follow from where it stopped
            token = domain.encode_token(search, Cursor(*result.resume, returned + len(shown)))
        facets = None
        if counted is not None:
            facets = domain.facets_of(spec, counted.total, counted.categories, counted.attributes,
                                      counted.price_buckets, counted.estimated)
        return Listing([f.product for f in shown], token, facets)

    async def _page(self, tenant_id: str, search: Search, text: store.TextQuery | None, cursor: Cursor | None,
                    limit: int, index: store.AttributeIndex) -> store.Result:
        if not limit:
            return store.Result([])
        async with self._db.session(tenant_id) as session:
            return await store.page(session, search, text, cursor, limit + 1, index)

    async def _facets(self, tenant_id: str, search: Search, text: store.TextQuery | None,
                      spec: FacetSpec, index: store.AttributeIndex) -> store.Counted | None:
        if not spec.wanted:
            return None
        async with self._db.session(tenant_id) as session:
            return await store.facets(session, search, text, spec, index)
