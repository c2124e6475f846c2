"""Pure domain rules, without servers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.catalog.cache import ProductCache
from services.catalog.domain import filtering, search
from services.catalog.domain.ids import is_product_id, new_product_id
from services.catalog.domain.product import Money, Product, ProductInput, ProductStatus, new_product, updated
from services.catalog.domain.visibility import ALL_STATUSES
from services.runtime.errors import InvalidArgument

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _product(product_id: str, title: str = "Mug") -> Product:
    fields = new_product(ProductInput(sku="MUG", title=title, category="kitchen", price=Money("USD", 100)))
    return Product(product_id, fields, NOW, NOW)


def test_product_ids_sort_by_creation_time_and_are_well_formed() -> None:
    ids = [new_product_id(now_ms=ms) for ms in (1, 2, 1_000, 1_700_000_000_000, 2**48 - 1)]
    assert ids == sorted(ids)
    assert all(is_product_id(i) and len(i) == 30 for i in ids)
    assert len({new_product_id(now_ms=5) for _ in range(1000)}) == 1000


def test_new_product_defaults_to_active_and_update_keeps_unmasked_fields() -> None:
    fields = new_product(ProductInput(sku="A", title="T", category="c", price=Money("USD", 1)))
    assert fields.status is ProductStatus.ACTIVE
    changed = updated(fields, ProductInput(title="New", sku="IGNORED"), frozenset({"title"}))
    assert (changed.title, changed.sku) == ("New", "A")


def test_update_cannot_set_status_back_to_unspecified() -> None:
    fields = new_product(ProductInput(sku="A", title="T", category="c", price=Money("USD", 1)))
    with pytest.raises(InvalidArgument) as caught:
        updated(fields, ProductInput(), frozenset({"status"}))
    assert [v.field for v in caught.value.violations] == ["product.status"]


def test_page_token_round_trips_only_with_the_same_filters() -> None:
    shoes = search.Search("", filtering.parse('category = "shoes"'), ALL_STATUSES, search.Ordering(search.SortKey.ID))
    hats = search.Search("", filtering.parse('category = "hats"'), ALL_STATUSES, search.Ordering(search.SortKey.ID))
    cursor = search.Cursor(None, "prd_01JDAAAAAAAAAAAAAAAAAAAAAA", 20)
    token = search.encode_token(shoes, cursor)
    assert search.decode_token(token, shoes) == cursor
    with pytest.raises(InvalidArgument):
        search.decode_token(token, hats)


def test_cache_drops_a_read_that_raced_an_eviction() -> None:
    cache = ProductCache(max_entries=2)
    cache.set_online(True)
    before = cache.generation
    cache.evict("t", "prd_1")  # a write committed while the read was in flight
    cache.put("t", _product("prd_1", "stale"), before)
    assert cache.get("t", "prd_1") is None


def test_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    cache = ProductCache(max_entries=2)
    cache.set_online(True)
    for pid in ("a", "b"):
        cache.put("t", _product(pid), cache.generation)
    assert cache.get("t", "a") is not None  # "b" is now the least recently used
    cache.put("t", _product("c"), cache.generation)
    assert (cache.get("t", "a") is not None, cache.get("t", "b"), len(cache)) == (True, None, 2)


def test_offline_cache_holds_nothing() -> None:
    cache = ProductCache()
    cache.put("t", _product("a"), cache.generation)
    assert cache.get("t", "a") is None
    cache.set_online(True)
    cache.put("t", _product("a"), cache.generation)
    cache.set_online(False)
    assert len(cache) == 0
