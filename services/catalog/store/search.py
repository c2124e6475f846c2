"""Searching a tenant's products: the SQL of filters and text, pages in any order, and
facet counts.

The SQL is put together from the search's *structure* only (which restrictions, which
order); every value the caller sent (words, categories, attribute keys and values,
prices, times, cursor positions) is a parameter. Each statement is planned for its
values (``Session.fetch_planned``): a word found in three products and one found in
most of them want different plans, and pages are read at a bounded cost
(store/pages.py).

Text: ``search @@ q`` with ``q = websearch_to_tsquery(<tenant language>, query)``,
where a word no title, category or attribute value contains is widened to its closest
known words (``search_terms``, pg_trgm similarity, and prefixes as typed): ``q`` then
holds ``'jaket' | 'jacket'``. Relevance ranks in two tiers, each read in product_id
order (newest first): rank 1, products whose title alone matches the query; rank 2,
the other matches (sku, category, attributes, description).

Facets count the whole filtered set (not the page): exactly when at most
FACET_EXACT_MAX products match, else from a fixed sample of the table's pages
(TABLESAMPLE SYSTEM, the same pages every time) scaled up, and say so (``estimated``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from services.catalog.domain.filtering import AllOf, AnyOf, Compare, Expr, HasKey, Not
from services.catalog.domain.product import Product, ProductStatus
from services.catalog.domain.search import Cursor, FacetSpec, Search, SortKey
from services.catalog.domain.visibility import ALL_STATUSES
from services.catalog.store.pages import PageQuery, Params, bounded, estimate
from services.runtime.sql import Session, Sql

FACET_EXACT_MAX = 5000
FACET_SAMPLE_PAGES = 1200  # ~10 MB of the table: about 15,000 products
FACET_VALUES_MAX = 50
SAMPLE_SEED = 13
TRGM = "extensions"  # the schema pg_trgm lives in (migration c0004)

_COLUMNS_OF = {"category": "category", "sku": "sku", "price": "price_minor", "currency": "price_currency",
               "status": "status", "create_time": "create_time"}
_CASTS = {"category": "text", "sku": "text", "price": "bigint", "currency": "text", "status": "text",
          "create_time": "timestamptz"}
_SQL_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}

# The tenant's language, and the words of a query that no product's title, category or
# attribute values hold, each with the known words closest to it: those it begins (as
# typed) and those most similar by trigrams (typos).
EXPANSIONS = Sql(f"""
SELECT s.language::text AS language, e.w, e.near
FROM {{schema}}.search_settings s
LEFT JOIN LATERAL (
    SELECT u.w, ARRAY(
        SELECT term FROM (
            (SELECT term FROM {{schema}}.search_terms
             WHERE term LIKE replace(replace(replace(u.w, '\\', '\\\\'), '%', '\\%'), '_', '\\_') || '%'
             ORDER BY length(term), term LIMIT 4)
            UNION
            (SELECT term FROM {{schema}}.search_terms WHERE term OPERATOR({TRGM}.%) u.w
             ORDER BY {TRGM}.similarity(term, u.w) DESC, term LIMIT 3)) AS near
        ORDER BY term) AS near
    FROM (SELECT DISTINCT w FROM unnest(tsvector_to_array(to_tsvector(s.language, $1::text))) AS w
          WHERE length(w) BETWEEN 3 AND 40
            AND NOT EXISTS (SELECT FROM {{schema}}.search_terms t WHERE t.term = w)) AS u) AS e ON true
""")


@dataclass(frozen=True)
class AttributeIndex:
    """How a filter's attribute restrictions are read (``attribute_index``): the keys too
    common to be worth their index, and whether every product has its ``attribute_pairs``
    (migration c0005; until the re-indexing it started ends, ``attributes`` is tested)."""

    common: frozenset[str] = frozenset()
    pairs: bool = False


def condition(expr: Expr, p: Params, index: AttributeIndex = AttributeIndex()) -> str:
    """The SQL of a filter tree: its structure in the text, its values as parameters."""
    if isinstance(expr, AllOf):
        return "(" + " AND ".join(condition(o, p, index) for o in expr.operands) + ")"
    if isinstance(expr, AnyOf):
        return "(" + " OR ".join(condition(o, p, index) for o in expr.operands) + ")"
    if isinstance(expr, Not):
        return f"(NOT {condition(expr.operand, p, index)})"
    if isinstance(expr, HasKey):
        return _has_key(expr.key, p, index.common)
    return _compare(expr, p, index)


def _has_key(key: str, p: Params, common: frozenset[str]) -> str:
    """The product has the attribute ``key`` (migration c0004: attribute_keys, whose statistics
    tell the planner how common the key is). For a common key the test is written so that no
    index serves it (``IS TRUE``; the planner still estimates it from the statistics): the
    planner would otherwise read its posting list of hundreds of thousands of rows to AND
    with the other restrictions' few, which costs more than testing those few rows."""
    has = f"(attribute_keys @> ARRAY[{p(key, 'text')}])"
    return f"({has} IS TRUE)" if key in common else has


def has_attributes(expr: Expr | None) -> bool:
    """The filter restricts attributes (keys or values)."""
    if expr is None:
        return False
    if isinstance(expr, AllOf | AnyOf):
        return any(has_attributes(o) for o in expr.operands)
    if isinstance(expr, Not):
        return has_attributes(expr.operand)
    return isinstance(expr, HasKey) or expr.member.name == "attribute"


def filter_keys(expr: Expr | None) -> frozenset[str]:
    """The attribute keys a filter asks products to have (``attributes:k``, ``attributes.k:*``)."""
    if expr is None:
        return frozenset()
    if isinstance(expr, AllOf | AnyOf):
        return frozenset().union(*(filter_keys(o) for o in expr.operands))
    if isinstance(expr, Not):
        return filter_keys(expr.operand)
    if isinstance(expr, HasKey):
        return frozenset({expr.key})
    if expr.member.name == "attribute" and expr.value is None:
        return frozenset({expr.member.key})
    return frozenset()


# Keys more than this share of the tenant's products have (by the planner's statistics).
COMMON_KEY_SHARE = 0.05
ATTRIBUTE_INDEX = Sql("""
SELECT (SELECT reindex_after IS NULL FROM {schema}.search_settings) AS pairs, ARRAY(
    SELECT e.key FROM pg_stats s,
         unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs) AS e(key, share)
    WHERE s.schemaname = $1 AND s.tablename = 'products' AND s.attname = 'attribute_keys'
      AND e.key = ANY($2::text[]) AND e.share > $3) AS common
""")


async def attribute_index(session: Session, expr: Expr | None) -> AttributeIndex:
    """How ``expr``'s attribute restrictions are best read: those of its keys that more than
    COMMON_KEY_SHARE of the products have, by the table's statistics, and whether
    ``attribute_pairs`` is complete (one statement; none when it restricts no attribute)."""
    if not has_attributes(expr):
        return AttributeIndex()
    row = await session.fetchrow(ATTRIBUTE_INDEX, session.schema, sorted(filter_keys(expr)), COMMON_KEY_SHARE)
    assert row is not None
    return AttributeIndex(frozenset(row["common"]), bool(row["pairs"]))


def attribute_pair(key: str, value: str) -> str:
    """The ``attribute_pairs`` element of an attribute (no key or value holds a control character)."""
    return f"{key}\x1f{value}"


def _compare(c: Compare, p: Params, index: AttributeIndex) -> str:
    name, value = c.member.name, c.value
    if name != "attribute":
        shown = value.value if isinstance(value, ProductStatus) else value
        return f"({_COLUMNS_OF[name]} {_SQL_OPS[c.op]} {p(shown, _CASTS[name])})"
    key = c.member.key
    if value is None:  # attributes.key:*
        return _has_key(key, p, index.common)
    if c.op in ("=", ":", "!="):
        if index.pairs:
            contains = f"(attribute_pairs @> ARRAY[{p(attribute_pair(key, str(value)), 'text')}])"
        else:
            contains = f"(attributes @> {p(json.dumps({key: str(value)}), 'jsonb')})"
        return f"(NOT {contains})" if c.op == "!=" else contains
    if isinstance(value, str):
        return f"((attributes ->> {p(key, 'text')}) {_SQL_OPS[c.op]} {p(value, 'text')})"
    # a number: values that are not numbers do not match
    k = p(key, "text")
    return (f"(CASE WHEN pg_input_is_valid(attributes ->> {k}, 'numeric') THEN (attributes ->> {k})::numeric END "
            f"{_SQL_OPS[c.op]} {p(value, 'numeric')})")


@dataclass(frozen=True)
class TextQuery:
    """The tsquery of a search: its language, the query, and the widening of unknown words."""

    language: str
    text: str
    expansions: tuple[tuple[str, tuple[str, ...]], ...]  # (word, closest known words)

    def sql(self, p: Params) -> str:
        q = f"websearch_to_tsquery({p(self.language, 'regconfig')}, {p(self.text, 'text')})"
        for word, near in self.expansions:
            wider = " | ".join(tsquery_lexeme(w) for w in (word, *near))
            q = f"ts_rewrite({q}, {p(tsquery_lexeme(word), 'tsquery')}, {p(wider, 'tsquery')})"
        return q


def title_match(q: str) -> str:
    """The query matches the title alone (weight A; the expression has a GIN index of its own)."""
    return f"ts_filter(search, '{{a}}') @@ {q}"


def tsquery_lexeme(lexeme: str) -> str:
    """One lexeme as tsquery input: quoted, its quotes doubled and backslashes escaped."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


async def text_query(session: Session, text: str) -> TextQuery | None:
    """The tsquery of ``text`` in the tenant's language, unknown words widened (one statement)."""
    if not text:
        return None
    rows = await session.fetch(EXPANSIONS, text)
    return TextQuery(rows[0]["language"], text, tuple((r["w"], tuple(r["near"])) for r in rows if r["near"]))


def _where(search: Search, q: str | None, p: Params, along: str = "",
           index: AttributeIndex = AttributeIndex()) -> tuple[list[str], list[str]]:
    """What every matching product satisfies (visibility, filter, text), and the part of it
    that restricts the sort column ``along`` (``price``, ``create_time``) alone."""
    parts: list[str] = []
    on_key: list[str] = []
    if search.statuses != ALL_STATUSES:
        parts.append(f"status = ANY({p(sorted(s.value for s in search.statuses), 'text[]')})")
    if search.filter is not None:
        for conjunct in search.filter.operands if isinstance(search.filter, AllOf) else (search.filter,):
            sql = condition(conjunct, p, index)
            parts.append(sql)
            if along and isinstance(conjunct, Compare) and conjunct.member.name == along:
                on_key.append(sql)
    if q is not None:
        parts.append(f"search @@ {q}")
    return parts, on_key


@dataclass(frozen=True)
class Found:
    product: Product
    cursor_key: Any  # what the token carries: the sort key (None in product_id order), or the rank


@dataclass(frozen=True)
class Result:
    found: list[Found]
    # A short page (its bounds ran out before it was full): the cursor to go on from.
    resume: tuple[Any, str] | None = None


# the sort expression, its type, and the filter member that restricts it
_KEYS = {SortKey.ID: ("product_id", "text", ""), SortKey.PRICE: ("price_minor", "bigint", "price"),
         SortKey.CREATE_TIME: ("create_time", "timestamptz", "create_time"),
         SortKey.TITLE: ("lower(title)", "text", "")}


def _after(key: str, cast: str, descending: bool, value: Any, product_id: str, p: Params) -> str:
    compare = "<" if descending else ">"
    if key == "product_id":
        return f"product_id {compare} {p(product_id, 'text')}"
    return f"({key}, product_id) {compare} ({p(value, cast)}, {p(product_id, 'text')})"


async def page(session: Session, search: Search, text: TextQuery | None, cursor: Cursor | None,
               limit: int, index: AttributeIndex = AttributeIndex()) -> Result:
    """Up to ``limit`` products after ``cursor`` in the search's order (the caller asks one
    more than it shows, to know whether another page follows)."""
    if search.ordering.key is SortKey.RELEVANCE:
        assert text is not None
        return await _by_relevance(session, search, text, cursor, limit, index)
    key, cast, along = _KEYS[search.ordering.key]
    p = Params()
    where, on_key = _where(search, text.sql(p) if text is not None else None, p, along, index)
    after = (_after(key, cast, search.ordering.descending, cursor.key, cursor.product_id, p)
             if cursor is not None else None)
    found = await bounded(session, PageQuery(p, where, on_key, None, key, search.ordering.descending, after), limit)
    by_id = search.ordering.key is SortKey.ID
    resume = None
    if found.resume is not None:
        resume = (None if by_id else found.resume[0], found.resume[1])
    return Result([Found(r.product, None if by_id else r.key) for r in found.rows], resume)


_NEGATION = re.compile(r"(^|\s)-")


async def _by_relevance(session: Session, search: Search, text: TextQuery, cursor: Cursor | None,
                        limit: int, index: AttributeIndex) -> Result:
    """Rank 1: the title alone matches (when the query excludes words, the whole product must
    match too); rank 2: the other matches. Within a rank newest first (oldest first when the
    order is reversed)."""
    ranks: tuple[int, ...] = (2, 1) if search.ordering.descending else (1, 2)
    if cursor is not None:
        ranks = ranks[ranks.index(cursor.key):]
    found: list[Found] = []
    for rank in ranks:
        p = Params()
        q = text.sql(p)
        where, _ = _where(search, q if rank == 2 or _NEGATION.search(text.text) else None, p, index=index)
        title = title_match(q)
        if rank == 1:
            where.append(title)
        after = (_after("product_id", "text", not search.ordering.descending, None, cursor.product_id, p)
                 if cursor is not None and cursor.key == rank else None)
        got = await bounded(session, PageQuery(p, where, [], title if rank == 2 else None, "product_id",
                                               not search.ordering.descending, after), limit - len(found))
        found += [Found(r.product, rank) for r in got.rows]
        if got.resume is not None:
            return Result(found, (rank, got.resume[1]))
        if len(found) >= limit:
            break
    return Result(found)


# --- facets ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counted:
    """Facet counts of a filtered set, as the store found them."""

    total: int
    categories: list[tuple[str, int]]
    attributes: dict[str, list[tuple[str, int]]]
    price_buckets: list[tuple[int, int]]  # (bucket number 0..len(bounds), count)
    estimated: bool


def _facet_sql(spec: FacetSpec, source: str, p: Params) -> str:
    branches = ["SELECT 0 AS facet, NULL::text AS value, count(*) AS n FROM s"]
    if spec.category:
        branches.append(f"(SELECT 1, category, count(*) FROM s GROUP BY 2 ORDER BY 3 DESC, 2 "
                        f"LIMIT {FACET_VALUES_MAX})")
    if spec.price_buckets:
        branches.append(f"SELECT 2, width_bucket(price_minor, {p(list(spec.price_buckets), 'bigint[]')})::text, "
                        "count(*) FROM s GROUP BY 2")
    for i, key in enumerate(spec.attributes):
        k = p(key, "text")
        branches.append(f"(SELECT {10 + i}, attributes ->> {k}, count(*) FROM s WHERE attributes ? {k} "
                        f"GROUP BY 2 ORDER BY 3 DESC, 2 LIMIT {FACET_VALUES_MAX})")
    return f"WITH s AS MATERIALIZED ({source})\n" + "\nUNION ALL ".join(branches)


async def facets(session: Session, search: Search, text: TextQuery | None, spec: FacetSpec,
                 index: AttributeIndex = AttributeIndex()) -> Counted:
    """Counts by category, attribute values and price bucket of every product the search matches:
    exact when at most FACET_EXACT_MAX match, else estimated from a fixed sample of the table."""
    p = Params()
    parts, _ = _where(search, text.sql(p) if text is not None else None, p, index=index)
    where = f" WHERE {' AND '.join(parts)}" if parts else ""
    matching, _ = await estimate(session, parts, p)
    if matching <= 2 * FACET_EXACT_MAX:  # the estimate may be off either way: try
        source = (f"SELECT category, attributes, price_minor FROM {{schema}}.products{where} "
                  f"LIMIT {FACET_EXACT_MAX + 1}")
        rows = await session.fetch_planned(Sql(_facet_sql(spec, source, p)), *p.values)
        if _total(rows) <= FACET_EXACT_MAX:
            return _counted(spec, rows, 1.0)
    pages = await session.fetchval(PAGES)
    percent = min(100.0, 100.0 * FACET_SAMPLE_PAGES / max(int(pages or 1), 1))
    p = Params()
    parts, _ = _where(search, text.sql(p) if text is not None else None, p, index=index)
    where = f" WHERE {' AND '.join(parts)}" if parts else ""
    sampled = (f"SELECT category, attributes, price_minor FROM {{schema}}.products "
               f"TABLESAMPLE SYSTEM ({p(percent, 'float8')}) REPEATABLE ({SAMPLE_SEED}){where}")
    rows = await session.fetch_planned(Sql(_facet_sql(spec, sampled, p)), *p.values)
    return _counted(spec, rows, 100.0 / percent)


PAGES = Sql("SELECT pg_relation_size('{schema}.products') / current_setting('block_size')::bigint")


def _total(rows: Sequence[asyncpg.Record]) -> int:
    return int(next(r["n"] for r in rows if r["facet"] == 0))


def _counted(spec: FacetSpec, rows: Sequence[asyncpg.Record], scale: float) -> Counted:
    def scaled(n: int) -> int:
        return round(n * scale)

    categories: list[tuple[str, int]] = []
    buckets: list[tuple[int, int]] = []
    attributes: dict[str, list[tuple[str, int]]] = {key: [] for key in spec.attributes}
    for r in rows:
        facet, value, n = r["facet"], r["value"], int(r["n"])
        if facet == 1:
            categories.append((value, scaled(n)))
        elif facet == 2:
            buckets.append((int(value), scaled(n)))
        elif facet >= 10:
            attributes[spec.attributes[facet - 10]].append((value, scaled(n)))
    return Counted(scaled(_total(rows)), categories, attributes, sorted(buckets), scale != 1.0)
