"""Attribute filters read ``attribute_pairs`` (migration c0005: each attribute as one
``key<US>value`` element, whose statistics the planner estimates well), against the real
PostgreSQL:

- the trigger keeps the pairs equal to the attributes through create, update and import;
- ``=``, ``:``, ``!=`` and ``NOT`` find exactly what the attributes hold, keys and values with
  ``=``, spaces, quotes or any case included, whether the pairs are complete or the search
  falls back to ``attributes`` while the re-indexing that completes them runs;
- a tenant whose products predate the pairs gets them from that re-indexing, started by the
  first attribute search if no replica runs it;
- the planner's estimate of an attribute value is close to the truth (the reason for it all);
- the migration's upgrade and downgrade, on a tenant with products."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from alembic import command
from commerce.catalog.v1 import catalog_pb2 as pb
from google.protobuf import field_mask_pb2
from sqlalchemy import Connection, text

from services.catalog.cache import SearchCache
from services.catalog.domain.filtering import parse
from services.catalog.languages import RETRY_SECONDS, SearchLanguages
from services.catalog.store import search as search_store
from services.catalog.store import search_settings
from services.catalog.store.pages import Params
from services.devmesh.postgres import Postgres
from services.runtime import migrations
from services.runtime.db import Database, ensure_database
from services.runtime.sql import Session
from tests.catalog.conftest import Shop, product
from tests.runtime.test_migrations import CATALOG_SCRIPTS, _upgrade_to

ATTRIBUTES: list[dict[str, str]] = [
    {"color": "red", "size": "M"},
    {"color": "Red", "size": "m"},
    {"color": "blue"},
    {"a=b": "c"},
    {"a": "b=c"},
    {"screen size": "15 in", "brand": "O'Neil \"Pro\""},
    {"color": "red", "material": "wool"},
    {},
]
Wanted = Callable[[dict[str, str]], bool]
CASES: list[tuple[str, Wanted]] = [
    ('attributes.color = "red"', lambda a: a.get("color") == "red"),
    ("attributes.color:red", lambda a: a.get("color") == "red"),
    ('attributes.color != "red"', lambda a: a.get("color") != "red"),
    ('NOT attributes.color = "red" AND attributes:color', lambda a: "color" in a and a["color"] != "red"),
    ('attributes.a = "b=c"', lambda a: a.get("a") == "b=c"),
    ('attributes."a=b" = "c"', lambda a: a.get("a=b") == "c"),
    ('attributes."screen size" = "15 in" AND attributes.brand = "O\'Neil \\"Pro\\""',
     lambda a: a.get("screen size") == "15 in" and a.get("brand") == 'O\'Neil "Pro"'),
    ('attributes.color = "red" AND attributes.size = "M"', lambda a: a.get("color") == "red" and a.get("size") == "M"),
    ('attributes.color = "red" OR attributes.color = "blue"', lambda a: a.get("color") in ("red", "blue")),
    ('attributes.color = "red" AND -attributes.material = "wool"',
     lambda a: a.get("color") == "red" and a.get("material") != "wool"),
    ('attributes.color = "re"', lambda a: False),
]


async def _import(shop: Shop, prefix: str) -> list[tuple[str, dict[str, str]]]:
    reply = await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=[
        pb.CatalogEntry(product=product(f"{prefix}-{n}", title=f"Thing {n}", category="misc", price=1000,
                                        attributes=attributes))
        for n, attributes in enumerate(ATTRIBUTES)]), metadata=shop.seller)
    return [(r.product_id, attributes) for r, attributes in zip(reply.results, ATTRIBUTES, strict=True)]


async def _found(shop: Shop, filter_: str) -> set[str]:
    reply = await shop.stub.ListProducts(pb.ListProductsRequest(filter=filter_, page_size=100), metadata=shop.customer)
    return {p.product_id for p in reply.products}


async def _pairs(db: Database, tenant: str) -> dict[str, set[str]]:
    async with db.session(tenant) as session:
        rows = await session.conn.fetch(f'SELECT product_id, attribute_pairs FROM "{session.schema}".products')
    return {r["product_id"]: set(r["attribute_pairs"]) for r in rows}


def _expected_pairs(attributes: dict[str, str]) -> set[str]:
    return {search_store.attribute_pair(k, v) for k, v in attributes.items()}


async def _check_cases(shop: Shop, made: list[tuple[str, dict[str, str]]]) -> None:
    for filter_, wanted in CASES:
        assert await _found(shop, filter_) == {pid for pid, a in made if wanted(a)}, filter_


async def _reindexing(db: Database, tenant: str) -> bool:
    async with db.session(tenant) as session:
        return (await search_settings.get(session)).reindexing


async def test_the_trigger_keeps_pairs_equal_to_the_attributes_through_every_write(
        shop: Shop, catalog_db: Database) -> None:
    made = await _import(shop, "KP")
    assert await _pairs(catalog_db, shop.tenant) == {pid: _expected_pairs(a) for pid, a in made}
    pid = made[0][0]
    await shop.stub.UpdateProduct(pb.UpdateProductRequest(
        product=pb.Product(product_id=pid, attributes={"color": "green", "fit": "slim"}),
        update_mask=field_mask_pb2.FieldMask(paths=["attributes"])), metadata=shop.seller)
    assert (await _pairs(catalog_db, shop.tenant))[pid] == _expected_pairs({"color": "green", "fit": "slim"})
    await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=[pb.CatalogEntry(product=product(
        "KP-0", title="Thing 0", category="misc", price=1000, attributes={"color": "black"}))]), metadata=shop.seller)
    assert (await _pairs(catalog_db, shop.tenant))[pid] == _expected_pairs({"color": "black"})


async def _matching(db: Database, tenant: str, filter_: str, index: search_store.AttributeIndex) -> set[str]:
    params = Params()
    condition = search_store.condition(parse(filter_), params, index)  # type: ignore[arg-type]
    async with db.session(tenant) as session:
        rows = await session.conn.fetch(
            f'SELECT product_id FROM "{session.schema}".products WHERE {condition}', *params.values)
    return {r["product_id"] for r in rows}


async def test_attribute_filters_find_what_the_attributes_hold_with_pairs_and_without(
        shop: Shop, catalog_db: Database) -> None:
    made = await _import(shop, "AP")
    await _check_cases(shop, made)  # the service: through attribute_pairs
    pairs, attributes = search_store.AttributeIndex(pairs=True), search_store.AttributeIndex(pairs=False)
    for filter_, wanted in CASES:
        expected = {pid for pid, a in made if wanted(a)}
        assert await _matching(catalog_db, shop.tenant, filter_, pairs) == expected, filter_
    # Products written before the pairs existed have none: the fallback reads attributes.
    async with catalog_db.session(shop.tenant) as session:
        await session.conn.execute(f'UPDATE "{session.schema}".products SET attribute_pairs = \'{{}}\'')
    assert await _matching(catalog_db, shop.tenant, 'attributes.color = "red"', pairs) == set()  # pairs are read
    for filter_, wanted in CASES:
        expected = {pid for pid, a in made if wanted(a)}
        assert await _matching(catalog_db, shop.tenant, filter_, attributes) == expected, filter_
    async with catalog_db.session(shop.tenant) as session:
        assert await search_store.attribute_index(session, None) == attributes  # no statement without attributes
        assert await search_store.attribute_index(session, parse("attributes:color")) == pairs
        await session.conn.execute(f'UPDATE "{session.schema}".search_settings SET reindex_after = \'\'')
        assert await search_store.attribute_index(session, parse('attributes.color = "red"')) == attributes


async def test_products_older_than_their_pairs_get_them_from_a_reindexing_the_first_attribute_search_starts(
        shop: Shop, catalog_db: Database) -> None:
    """As after migration c0005 on a tenant with products, when the catalog started before
    that tenant's schema was migrated (its start-up found nothing to re-index)."""
    made = await _import(shop, "OP")
    async with catalog_db.transaction(shop.tenant) as session:
        await session.conn.execute(f'UPDATE "{session.schema}".products SET attribute_pairs = \'{{}}\'')
        await session.conn.execute(f'UPDATE "{session.schema}".search_settings SET reindex_after = \'\'')
    await asyncio.sleep(0.3)
    assert await _reindexing(catalog_db, shop.tenant)  # nothing started it
    assert await _found(shop, 'category = "misc"') == {pid for pid, _ in made}  # no attribute: nothing starts
    await asyncio.sleep(0.3)
    assert await _reindexing(catalog_db, shop.tenant)
    red = {pid for pid, a in made if a.get("color") == "red"}
    assert await _found(shop, 'attributes.color = "red"') == red  # from attributes, and re-indexing starts
    for _ in range(100):
        if not await _reindexing(catalog_db, shop.tenant):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the re-indexing never finished")
    assert await _pairs(catalog_db, shop.tenant) == {pid: _expected_pairs(a) for pid, a in made}
    await _check_cases(shop, made)


async def test_the_planner_estimates_an_attribute_value_close_to_how_many_products_hold_it(
        shop: Shop, catalog_db: Database) -> None:
    """What the pairs are for: jsonb containment was estimated from samples of whole attribute
    objects (at a million products, a brand's 1,168 products as 91)."""
    brands = [f"b{n:02d}" for n in range(40)]
    entries = []
    for n in range(4000):
        brand = brands[0] if n % 2 else brands[1 + (n // 2) % 39]  # b00: half; each other: 1/78
        attributes = {"brand": brand, "color": ("red", "blue", "green", "black")[n % 4], "serial": f"s{n}"}
        entries.append(pb.CatalogEntry(product=product(f"PE-{n:04d}", title=f"Estimated {n}", category="misc",
                                                       price=1000, attributes=attributes)))
    for start in range(0, len(entries), 1000):
        await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=entries[start:start + 1000]),
                                       metadata=shop.seller)
    async with catalog_db.session(shop.tenant) as session:
        await session.conn.execute(f'ANALYZE "{session.schema}".products')
        for brand in ("b00", "b07", "b31"):
            actual = sum(1 for e in entries if e.product.attributes["brand"] == brand)
            plan = await session.conn.fetchval(
                f'EXPLAIN (FORMAT JSON) SELECT 1 FROM "{session.schema}".products WHERE attribute_pairs @> ARRAY[$1]',
                search_store.attribute_pair("brand", brand))
            estimated = json.loads(plan)[0]["Plan"]["Plan Rows"]
            assert 0.75 * actual <= estimated <= 1.25 * actual, (brand, actual, estimated)


def _downgrade(connection: Connection, schema: str, revision: str) -> None:
    connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
    command.downgrade(migrations._config(CATALOG_SCRIPTS, connection, schema), revision)


_INSERT = ("INSERT INTO {s}.products (product_id, sku, title, description, category, attributes, price_currency, "
           "price_minor, status) VALUES (:id, :id, 'Old thing', '', 'misc', CAST(:attributes AS jsonb), 'USD', 100, "
           "'ACTIVE')")


async def test_the_migration_starts_a_reindexing_only_where_products_exist_and_downgrades(postgres: Postgres) -> None:
    await ensure_database(postgres.url, "cat_pairs")
    db = Database(postgres.url, "cat_pairs", pool_size=2)
    try:
        async with db.engine.begin() as conn:
            for schema in ("t_pairs_full", "t_pairs_empty"):
                await conn.run_sync(_upgrade_to, schema, "c0004")
            await conn.execute(text(_INSERT.format(s='"t_pairs_full"')),
                               {"id": "prd_old", "attributes": '{"color": "red"}'})
            for schema in ("t_pairs_full", "t_pairs_empty"):
                await conn.run_sync(_upgrade_to, schema, "c0005")
        async with db.engine.connect() as conn:
            assert await conn.scalar(text('SELECT reindex_after FROM "t_pairs_full".search_settings')) == ""
            assert await conn.scalar(text('SELECT reindex_after FROM "t_pairs_empty".search_settings')) is None
            assert await conn.scalar(text('SELECT attribute_pairs FROM "t_pairs_full".products')) == []
        async with db.session_in("t_pairs_full") as session:
            while await search_settings.reindex_batch(session, 10):
                pass
            assert await session.conn.fetchval('SELECT attribute_pairs FROM "t_pairs_full".products') == [
                search_store.attribute_pair("color", "red")]
        async with db.engine.begin() as conn:
            await conn.run_sync(_downgrade, "t_pairs_full", "c0004")
            await conn.execute(text(_INSERT.format(s='"t_pairs_full"')),
                               {"id": "prd_new", "attributes": '{"color": "blue"}'})  # the c0004 trigger works
            columns = set(await conn.scalars(text("SELECT column_name FROM information_schema.columns "
                                              "WHERE table_schema = 't_pairs_full' AND table_name = 'products'")))
            assert "attribute_pairs" not in columns and "attribute_keys" in columns
            assert await conn.scalar(text('SELECT attribute_keys FROM "t_pairs_full".products '
                                          "WHERE product_id = 'prd_new'")) == ["color"]
    finally:
        await db.dispose()


async def test_searches_resume_an_unfinished_reindexing_but_not_again_right_after_it_failed(
        shop: Shop, catalog_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attribute search of a tenant whose re-indexing is unfinished asks to resume it: a
    failing one (a timeout, say) must not be started again by each of them."""
    attempts: list[str] = []

    async def failing(session: Session, size: int) -> bool:
        attempts.append(session.schema)
        raise RuntimeError("canceling statement due to statement timeout")

    monkeypatch.setattr(search_settings, "reindex_batch", failing)
    languages = SearchLanguages(catalog_db, SearchCache())
    languages.resume(shop.tenant)
    await _settled(languages)
    assert len(attempts) == 1
    for _ in range(5):
        languages.resume(shop.tenant)
        await _settled(languages)
    assert len(attempts) == 1  # within RETRY_SECONDS of the failure
    languages.reindex(shop.tenant)  # a change of language (or a start) does not wait
    await _settled(languages)
    assert len(attempts) == 2
    languages._failed[shop.tenant] -= RETRY_SECONDS
    languages.resume(shop.tenant)
    await _settled(languages)
    assert len(attempts) == 3
    await languages.stop()


async def _settled(languages: SearchLanguages) -> None:
    for _ in range(100):
        if all(task.done() for task in languages._tasks.values()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the re-indexing task never ended")
