"""Full-text search, orders and facets of ListProducts, against the real PostgreSQL:
ranking (title matches first), stemming in the tenant's language, typos and prefixes,
the websearch syntax, order_by, facet counts of the filtered set, and the tenant's
search language."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from google.protobuf import field_mask_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from services.catalog.domain import search as search_rules
from services.catalog.domain.filtering import parse
from services.catalog.store import search as search_store
from services.runtime.db import Database
from services.runtime.settings import Settings
from tests.catalog.conftest import Shop, product
from tests.catalog.harness import start_catalog
from tests.errors import violated_fields
from tests.tokens import TestKeys


async def _make(shop: Shop, sku: str, title: str, *, description: str = "", category: str = "misc",
                price: int = 1000, attributes: dict[str, str] | None = None,
                status: int = pb.PRODUCT_STATUS_UNSPECIFIED) -> str:
    reply = await shop.stub.CreateProduct(pb.CreateProductRequest(product=product(
        sku, title=title, description=description, category=category, price=price, attributes=attributes,
        status=status)), metadata=shop.seller)
    return str(reply.product.product_id)


async def _search(shop: Shop, query: str = "", *, by: tuple[tuple[str, str], ...] | None = None,
                  **fields: object) -> list[str]:
    reply = await shop.stub.ListProducts(pb.ListProductsRequest(query=query, page_size=100, **fields),  # type: ignore[arg-type]
                                         metadata=by or shop.customer)
    return [p.product_id for p in reply.products]


async def test_title_matches_rank_first_then_other_fields_newest_first_within_each(shop: Shop) -> None:
    in_description = await _make(shop, "D-1", "Plain mug", description="A lantern for the garden")
    in_title_old = await _make(shop, "T-1", "Brass lantern")
    in_attribute = await _make(shop, "A-1", "Plain cup", attributes={"style": "lantern"})
    in_title_new = await _make(shop, "T-2", "Paper lantern, red")
    in_category = await _make(shop, "C-1", "Plain bowl", category="lantern")
    await _make(shop, "N-1", "Candle")
    found = await _search(shop, "lanterns")  # stemmed: lantern
    assert found[:2] == [in_title_new, in_title_old]
    assert found[2:] == [in_category, in_attribute, in_description]  # rank 2, newest first
    reverse = await _search(shop, "lanterns", order_by="relevance desc")
    assert reverse == list(reversed(found))


async def test_every_word_must_match_unless_or_and_minus_excludes(shop: Shop) -> None:
    red_shoe = await _make(shop, "RS", "Red running shoe")
    blue_shoe = await _make(shop, "BS", "Blue running shoe")
    red_hat = await _make(shop, "RH", "Red hat")
    assert await _search(shop, "red shoe") == [red_shoe]
    assert sorted(await _search(shop, "shoe or hat")) == sorted([red_shoe, blue_shoe, red_hat])
    assert await _search(shop, "running -red") == [blue_shoe]
    assert await _search(shop, '"running shoe" blue') == [blue_shoe]
    assert await _search(shop, '"shoe running"') == []  # a phrase keeps its word order


async def test_sku_and_attribute_values_are_searched(shop: Shop) -> None:
    by_sku = await _make(shop, "ZX-9000", "Plain thing")
    by_value = await _make(shop, "V-1", "Plain shirt", attributes={"material": "merino"})
    assert await _search(shop, "ZX-9000") == [by_sku]
    assert await _search(shop, "merino") == [by_value]


async def test_a_typo_or_a_word_begun_finds_the_known_words_closest_to_it(shop: Shop) -> None:
    jacket = await _make(shop, "J-1", "Waterproof jacket")
    jersey = await _make(shop, "J-2", "Cycling jersey")
    await _make(shop, "J-3", "Garden hose")
    assert await _search(shop, "jaket") == [jacket]  # a typo
    assert await _search(shop, "waterprof jacket") == [jacket]
    assert await _search(shop, "jers") == [jersey]  # as typed so far
    assert await _search(shop, "cycling jers") == [jersey]
    assert await _search(shop, "zzzz") == []
    assert await _search(shop, "jacket") == [jacket]  # a known word is taken as it is


async def test_nothing_to_search_for_finds_nothing_and_queries_are_checked(shop: Shop) -> None:
    await _make(shop, "X-1", "The thing")
    assert await _search(shop, "the") == []  # a stop word only
    for bad in ("q" * 201, "bad\x00query"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _search(shop, bad)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and violated_fields(caught.value) == ["query"]


async def test_order_by_price_create_time_and_title_each_way_breaking_ties_by_id(shop: Shop) -> None:
    made = {}
    for sku, title, price in (("O-1", "banana", 300), ("O-2", "Apple", 100), ("O-3", "cherry", 300),
                              ("O-4", "apple pie", 200)):
        made[sku] = await _make(shop, sku, title, price=price)
    o1, o2, o3, o4 = made["O-1"], made["O-2"], made["O-3"], made["O-4"]
    assert await _search(shop, order_by="price") == [o2, o4, o1, o3]
    assert await _search(shop, order_by="price desc") == [o3, o1, o4, o2]
    assert await _search(shop, order_by="create_time") == [o1, o2, o3, o4]
    assert await _search(shop, order_by=" create_time  desc ") == [o4, o3, o2, o1]
    assert await _search(shop, order_by="title") == [o2, o4, o1, o3]  # case-insensitive
    assert await _search(shop, order_by="title desc") == [o3, o1, o4, o2]
    assert await _search(shop, "apple", order_by="price desc") == [o4, o2]
    assert await _search(shop) == [o1, o2, o3, o4]  # no query, no order_by: oldest first, as always


@pytest.mark.parametrize(("order_by", "query", "expected"), [
    ("relevance", "", "relevance needs a query"),
    ("price, title", "", "sorts by one field"),
    ("colour", "", "must be one of"),
    ("price up", "", "must be one of"),
])
async def test_bad_order_by_is_invalid_argument(shop: Shop, order_by: str, query: str, expected: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _search(shop, query, order_by=order_by)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["order_by"] and expected in (caught.value.details() or "")


async def test_facets_count_every_match_not_only_the_page_with_filters_that_select_them(shop: Shop) -> None:
    for n in range(12):
        await _make(shop, f"F-{n}", f"Linen shirt {n}", category="shirts" if n % 3 else "tops",
                    price=(500, 1500, 3000, 150000)[n % 4], attributes={"size": "SML"[n % 3]} if n % 4 else {})
    await _make(shop, "F-X", "Wool scarf", category="scarves", attributes={"size": "S"})
    await _make(shop, "F-D", "Linen draft", category="shirts", status=pb.PRODUCT_STATUS_DRAFT)
    reply = await shop.stub.ListProducts(pb.ListProductsRequest(
        query="linen", page_size=2, facets=["category", "attributes.size", "price"], price_buckets=[1000, 2000]),
        metadata=shop.customer)
    assert len(reply.products) == 2 and reply.total_size == 12 and not reply.counts_estimated
    facets = {f.field: [(v.value, v.count) for v in f.values] for f in reply.facets}
    assert [f.field for f in reply.facets] == ["category", "price", "attributes.size"]
    assert facets["category"] == [("shirts", 8), ("tops", 4)]
    assert facets["price"] == [("[0,1000)", 3), ("[1000,2000)", 3), ("[2000,)", 6)]
    assert sorted(facets["attributes.size"]) == [("L", 3), ("M", 3), ("S", 3)]
    for facet in reply.facets:  # each value's filter selects exactly the products it counted
        for value in facet.values:
            listed = await _search(shop, "linen", filter=value.filter)
            assert len(listed) == value.count, (facet.field, value)
    narrowed = await shop.stub.ListProducts(pb.ListProductsRequest(
        query="linen", filter='attributes.size = "S"', facets=["category"]), metadata=shop.customer)
    assert [(v.value, v.count) for v in narrowed.facets[0].values] == [("tops", 3)]


@pytest.mark.parametrize(("fields", "field"), [
    ({"facets": ["colour"]}, "facets"),
    ({"facets": ["category"] * 11}, "facets"),
    ({"facets": ["price"], "price_buckets": [2000, 1000]}, "price_buckets"),
    ({"facets": ["price"], "price_buckets": [0, 1000]}, "price_buckets"),
    ({"price_buckets": [1000]}, "price_buckets"),
])
async def test_bad_facets_are_invalid_argument(shop: Shop, fields: dict[str, list[object]], field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.ListProducts(pb.ListProductsRequest(**fields), metadata=shop.customer)  # type: ignore[arg-type]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and violated_fields(caught.value) == [field]


@pytest.fixture
def small_exact_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Facets of more than 20 matches estimated from a sample of 2 pages (the catalog runs in-process)."""
    monkeypatch.setattr(search_store, "FACET_EXACT_MAX", 20)
    monkeypatch.setattr(search_store, "FACET_SAMPLE_PAGES", 2)
    yield


async def test_facets_of_many_matches_are_estimated_from_a_fixed_sample_and_say_so(
        shop: Shop, small_exact_limit: None) -> None:
    entries = [pb.CatalogEntry(product=product(f"E-{n:04d}", title=f"Estimated item {n}", description="x" * 400,
                                               category="even" if n % 2 == 0 else "odd")) for n in range(600)]
    await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=entries), metadata=shop.seller)
    request = pb.ListProductsRequest(facets=["category"], page_size=1)
    first = await shop.stub.ListProducts(request, metadata=shop.customer)
    assert first.counts_estimated and first.total_size > 0
    counts = {v.value: v.count for v in first.facets[0].values}
    assert sum(counts.values()) == first.total_size
    assert 0.3 < counts["even"] / first.total_size < 0.7
    again = await shop.stub.ListProducts(pb.ListProductsRequest(facets=["category"], page_size=2),
                                         metadata=shop.customer)
    assert (again.total_size, list(again.facets)) == (first.total_size, list(first.facets)), "the same sample"
    few = await shop.stub.ListProducts(pb.ListProductsRequest(filter="sku < \"E-0010\"", facets=["category"]),
                                       metadata=shop.customer)
    assert not few.counts_estimated and few.total_size == 10


async def test_deprecated_fields_still_filter_anded_with_the_filter(shop: Shop) -> None:
    cheap = await _make(shop, "L-1", "Cheap", category="hats", price=100, attributes={"color": "red"})
    await _make(shop, "L-2", "Dear", category="hats", price=9000, attributes={"color": "red"})
    await _make(shop, "L-3", "Cheap shoe", category="shoes", price=100, attributes={"color": "red"})
    await _make(shop, "L-4", "Cheap blue", category="hats", price=100, attributes={"color": "blue"})
    found = await _search(shop, category="hats", max_price_minor=500, filter='attributes.color = "red"')
    assert found == [cheap]


async def test_shoppers_filtering_on_status_see_active_and_archived_never_drafts(shop: Shop) -> None:
    active = await _make(shop, "S-1", "Active")
    draft = await _make(shop, "S-2", "Draft", status=pb.PRODUCT_STATUS_DRAFT)
    archived = await _make(shop, "S-3", "Archived", status=pb.PRODUCT_STATUS_ARCHIVED)
    assert await _search(shop) == [active]
    assert await _search(shop, filter="status = DRAFT") == []
    assert await _search(shop, filter="status != ACTIVE") == [archived]
    assert await _search(shop, filter="status != ACTIVE", by=shop.seller) == [draft, archived]


async def test_relevance_stops_after_its_maximum_of_results(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_rules, "RELEVANCE_MAX", 5)
    for n in range(8):
        await _make(shop, f"R-{n}", f"Ranked lamp {n}")
    seen: list[str] = []
    token = ""
    for _ in range(5):
        reply = await shop.stub.ListProducts(pb.ListProductsRequest(query="lamp", page_size=2, page_token=token),
                                             metadata=shop.customer)
        seen += [p.product_id for p in reply.products]
        token = reply.next_page_token
        if not token:
            break
    assert len(seen) == 5 and not token
    assert len(await _search(shop, "lamp", order_by="price")) == 8  # other orders go through everything


async def _until_reindexed(shop: Shop) -> pb.SearchSettings:
    for _ in range(100):
        reply = await shop.stub.GetSearchSettings(pb.GetSearchSettingsRequest(), metadata=shop.seller)
        settings: pb.SearchSettings = reply.settings
        if not settings.reindexing:
            return settings
        await asyncio.sleep(0.05)
    raise AssertionError("re-indexing never finished")


async def test_the_search_language_is_a_tenant_setting_and_changing_it_reindexes(shop: Shop) -> None:
    owner = shop.as_("owner")
    settings = (await shop.stub.GetSearchSettings(pb.GetSearchSettingsRequest(), metadata=shop.seller)).settings
    assert settings.language == "english" and not settings.reindexing
    assert {"simple", "english", "german", "french"} <= set(settings.available_languages)
    houses = [await _make(shop, f"G-{n}", f"Häuser aus Holz, Modell {n}") for n in range(5)]
    assert await _search(shop, "Haus") == []  # in English, "häuser" is a word of its own
    changed = await shop.stub.UpdateSearchSettings(pb.UpdateSearchSettingsRequest(
        settings=pb.SearchSettings(language="german")), metadata=owner)
    assert changed.settings.language == "german"
    await _until_reindexed(shop)
    assert sorted(await _search(shop, "Haus")) == sorted(houses)  # German stemming: häuser -> haus
    later = await _make(shop, "G-9", "Haus am See")
    assert later in await _search(shop, "Häusern")
    again = await shop.stub.UpdateSearchSettings(pb.UpdateSearchSettingsRequest(
        settings=pb.SearchSettings(language="german")), metadata=owner)
    assert not again.settings.reindexing  # the same language: nothing to do


async def test_search_settings_are_checked_and_only_owners_and_admins_change_them(shop: Shop) -> None:
    for language in ("klingon", "", "pg_catalog.english"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await shop.stub.UpdateSearchSettings(pb.UpdateSearchSettingsRequest(
                settings=pb.SearchSettings(language=language)), metadata=shop.as_("owner"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(caught.value) == ["settings.language"]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.UpdateSearchSettings(pb.UpdateSearchSettingsRequest(
            settings=pb.SearchSettings(language="simple")), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_an_update_shows_in_the_next_search(shop: Shop) -> None:
    pid = await _make(shop, "U-1", "Old name")
    assert await _search(shop, "old") == [pid]  # now cached
    await shop.stub.UpdateProduct(pb.UpdateProductRequest(
        product=pb.Product(product_id=pid, title="Fresh name"), update_mask=field_mask_pb2.FieldMask(paths=["title"])),
        metadata=shop.seller)
    assert await _search(shop, "old") == [] and await _search(shop, "fresh") == [pid]


async def test_attributes_changed_by_an_update_or_an_import_are_what_filters_see(shop: Shop) -> None:
    pid = await _make(shop, "K-1", "Keyed", attributes={"color": "red", "size": "M"})
    assert await _search(shop, filter="attributes:size") == [pid]  # now cached
    await shop.stub.UpdateProduct(pb.UpdateProductRequest(
        product=pb.Product(product_id=pid, attributes={"color": "blue"}),
        update_mask=field_mask_pb2.FieldMask(paths=["attributes"])), metadata=shop.seller)
    assert await _search(shop, filter="attributes:size") == []
    assert await _search(shop, filter='attributes.color = "blue" AND NOT attributes.size:*') == [pid]
    await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=[pb.CatalogEntry(product=product(
        "K-1", title="Keyed", category="misc", price=1000, attributes={"weight": "3"}))]), metadata=shop.seller)
    assert await _search(shop, filter="attributes:weight AND attributes.weight < 5") == [pid]
    assert await _search(shop, filter="attributes.color:*") == []


async def test_a_key_most_products_have_is_tested_on_the_rows_not_read_from_its_index(
        shop: Shop, catalog_db: Database) -> None:
    """attributes:k of a key more than 5 % of the products have is written so that no index
    serves it; what the search finds is the same either way."""
    entries = []
    for n in range(300):
        attributes = {"material": "wool"} if n % 5 else {}  # 80 %
        if n % 50 == 0:
            attributes["warranty"] = "2y"  # 2 %
        entries.append(pb.CatalogEntry(product=product(f"CK-{n:03d}", title=f"Common key {n}", category=f"c{n % 3}",
                                                       price=1000, attributes=attributes)))
    reply = await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=entries), metadata=shop.seller)
    ids = [r.product_id for r in reply.results]
    async with catalog_db.session(shop.tenant) as session:
        both = parse("attributes:material AND attributes:warranty")
        assert (await search_store.attribute_index(session, both)).common == frozenset()  # no statistics yet
        await session.conn.execute(f'ANALYZE "{session.schema}".products')
        three = parse("attributes:material OR attributes:warranty OR attributes.absent:*")
        assert (await search_store.attribute_index(session, three)).common == {"material"}
    cases: list[tuple[str, Callable[[int], bool]]] = [
        ('category = "c1" AND attributes:material', lambda n: n % 3 == 1 and n % 5 != 0),
        ("attributes.material:* AND NOT attributes:warranty", lambda n: n % 5 != 0),
        ('attributes:warranty OR (category = "c2" AND -attributes:material)',
         lambda n: n % 50 == 0 or (n % 3 == 2 and n % 5 == 0))]
    for filter_, wanted in cases:
        found: list[str] = []
        token = ""
        while True:
            page = await shop.stub.ListProducts(pb.ListProductsRequest(filter=filter_, page_size=100, page_token=token),
                                                metadata=shop.customer)
            found += [p.product_id for p in page.products]
            token = page.next_page_token
            if not token:
                break
        assert found == [ids[n] for n in range(300) if wanted(n)], filter_


async def test_any_lexeme_quoted_for_tsquery_is_read_back_as_that_one_lexeme(catalog_db: Database) -> None:
    """The widening of unknown words writes lexemes into tsquery input (a parameter, not SQL):
    whatever a word holds, PostgreSQL reads exactly that one lexeme back."""
    drawn: list[str] = []

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(lexeme=st.text(min_size=1, max_size=12).filter(lambda w: "\x00" not in w))
    def collect(lexeme: str) -> None:
        drawn.append(lexeme)

    collect()
    drawn += ["it's", "a\\b", "'", "\\", "a:*", "a & b", "!x", "(x)"]
    pool = await catalog_db.pool()
    async with pool.acquire() as conn:
        for lexeme in drawn:
            quoted = search_store.tsquery_lexeme(lexeme)
            one, itself, other = await conn.fetchrow(
                "SELECT numnode($1::tsquery) = 1, array_to_tsvector(ARRAY[$2]) @@ $1::tsquery, "
                "array_to_tsvector(ARRAY[$2 || 'x']) @@ $1::tsquery", quoted, lexeme)
            assert one and itself and not other, (lexeme, quoted)


async def test_a_reindexing_left_unfinished_is_finished_by_the_next_catalog_to_start(
        shop: Shop, catalog_db: Database, catalog_settings: Settings, keys: TestKeys) -> None:
    made = [await _make(shop, f"RX-{n}", f"Running shoes {n}") for n in range(3)]

    async def lexemes() -> set[str]:
        async with catalog_db.session(shop.tenant) as session:
            rows = await session.conn.fetch(f'SELECT DISTINCT unnest(tsvector_to_array(search)) AS w '
                                            f'FROM "{session.schema}".products')
        return {r["w"] for r in rows}

    assert {"run", "shoe"} <= await lexemes()  # English stems
    async with catalog_db.transaction(shop.tenant) as session:  # a replica stopped right after the change
        await session.conn.execute(f'UPDATE "{session.schema}".search_settings '
                                   "SET language = 'simple', reindex_after = ''")
        await session.conn.execute(f'DELETE FROM "{session.schema}".search_terms')
    running, _ = await start_catalog(catalog_settings, keys)
    try:
        settings = await _until_reindexed(shop)
        assert settings.language == "simple"
        assert {"running", "shoes"} <= await lexemes() and not {"run", "shoe"} & await lexemes()
        assert sorted(await _search(shop, "running shoes")) == sorted(made)
    finally:
        await running.stop(0)


async def test_words_an_import_adds_are_in_the_trigram_index_at_once(shop: Shop, catalog_db: Database) -> None:
    """Migration c0007: the vocabulary's trigram index has no pending list (GIN fastupdate), which
    every search would read in full until a vacuum: right after a large import an unknown word
    cost 15 ms instead of 0.4."""
    entries = [pb.CatalogEntry(product=product(f"VW-{n:03d}", title=f"Novel{n}word gizmo{n}x", category="misc",
                                               price=1000)) for n in range(200)]
    await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=entries), metadata=shop.seller)
    async with catalog_db.session(shop.tenant) as session:
        index = f'"{session.schema}".search_terms_trgm'
        added = f"SELECT count(*) FROM \"{session.schema}\".search_terms WHERE term LIKE 'novel%'"
        assert await session.conn.fetchval(added) == 200
        assert await session.conn.fetchval(f"SELECT gin_clean_pending_list('{index}'::regclass)") == 0
    assert await _search(shop, "novel17wrd") != []  # a typo of a new word: found through the index
