"""One page of products in a sort order, at a bounded cost whatever the planner believes.

``ORDER BY key LIMIT 21`` under a filter has two good plans: walk the order's index and
test each row (cheap when matches are common), or find every match through the filters'
indexes and sort them (cheap when they are few). PostgreSQL picks by its estimate of how
many rows match, and that estimate goes wrong for exactly what search does: a word in
the title *and* in the category (correlated: estimated 700, really 26,000: it sorts
26,000 rows), or "matches the text but not in the title" (estimated 600, really 0: it
walks the whole table). So each page is read with both plans spelled out, each bounded:

- *filter-first*: at most ``cap`` matches are collected (any plan), then sorted. When
  there are no more than ``cap``, the answer is exact;
- *ordered*: at most ``budget`` rows are read in the order's index (with the range
  conditions on the sort column, which that index serves), each tested. When ``need``
  of them match, or the index ends, the answer is exact.

The planner's estimate (one EXPLAIN) picks which to try first; the other follows if the
first could not finish within its bound. If neither can, the page is short and says
where the ordered walk stopped (``resume``): the next page goes on from there (AIP-158
allows short pages). Every statement is planned for its own values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from services.catalog.domain.product import Product
from services.catalog.store.products import COLUMNS, from_record
from services.runtime.sql import Session, Sql

FILTER_FIRST_MAX = 5000  # matches collected and sorted, at most
ORDERED_MIN, ORDERED_MAX = 2000, 20000  # rows an ordered walk reads, at least and at most
# Reading rows in product_id or create_time order reads the table about as it lies on disk;
# in price or title order every row is elsewhere: a row walked costs this much of one collected.
# Measured at a million products (warm): walking 20,000 rows in product_id order took 13 ms
# (0.65 us a row); collecting the 3,867 matches of a colour and a size through
# attribute_pairs' index took 8.7 ms (2.2 us a match: a ratio of 0.3), and the 3,100 of a
# category and two colours, whose index entries are many more, 41 ms (13 us a match: 0.05).
# 0.2 is a chosen value between the two (collecting first up to about 2,000 matches of a
# million, for a page of 20).
_WALK_COST = {"product_id": 0.2, "create_time": 0.2}
_P_COLUMNS = ", ".join(f"p.{c.strip()}" for c in COLUMNS.split(","))


class Params:
    """The values of one statement, as they are added: ``p(value, "bigint")`` -> ``$3::bigint``."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._casts: list[str] = []

    def __call__(self, value: Any, cast: str) -> str:
        self.values.append(value)
        self._casts.append(cast)
        return f"${len(self.values)}::{cast}"

    def unused(self) -> str:
        """A condition that is always true and names every parameter: for a statement that needs
        only some of them (PostgreSQL refuses a parameter it cannot type). The planner drops it."""
        if not self._casts:
            return "true"
        row = ", ".join(f"${n}::{cast}" for n, cast in enumerate(self._casts, start=1))
        return f"(ROW({row}) IS NULL OR true)"


@dataclass(frozen=True)
class PageQuery:
    """What one page is read from. Every SQL fragment uses ``params`` ($n) for every value."""

    params: Params
    where: list[str]  # what every product of the result satisfies
    along: list[str]  # those of ``where`` on the sort column alone: the order's index serves them
    exclude: str | None  # products that satisfy ``where`` but are not wanted here (relevance rank 2)
    key: str  # sort expression: product_id, price_minor, create_time or lower(title)
    descending: bool
    after: str | None  # the keyset condition: rows after the cursor


@dataclass(frozen=True)
class Row:
    product: Product
    key: Any  # the sort key's value


@dataclass(frozen=True)
class Page:
    rows: list[Row]
    resume: tuple[Any, str] | None  # a short page: (key, product_id) the ordered walk stopped at


def _order(q: PageQuery, key: str = "k", pid: str = "product_id") -> str:
    direction = " DESC" if q.descending else ""
    return f"{key}{direction}, {pid}{direction}"


def _conjunction(parts: list[str]) -> str:
    return " AND ".join(parts) if parts else "true"


async def estimate(session: Session, where: list[str], params: Params) -> tuple[float, float]:
    """The planner's estimate of the products that satisfy ``where``, and of all products."""
    sql = Sql(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {{schema}}.products WHERE {_conjunction(where)} "
              "UNION ALL SELECT 1 FROM {schema}.products")
    plan = json.loads((await session.fetch_planned(sql, *params.values))[0][0])[0]["Plan"]
    matching, everything = (float(child["Plan Rows"]) for child in plan["Plans"])
    return matching, everything


def _rows(records: list[asyncpg.Record]) -> list[Row]:
    return [Row(from_record(r), r["sort_key"]) for r in records if r["product_id"] is not None]


async def _filter_first(session: Session, q: PageQuery, need: int, cap: int) -> Page | None:
    """The page, when at most ``cap`` products match; None when more do."""
    where = _conjunction([*q.where, *([q.after] if q.after else [])])
    excluded = f", ({q.exclude}) AS x" if q.exclude else ""
    sql = Sql(f"""
WITH m AS MATERIALIZED (
    SELECT product_id, {q.key} AS k{excluded} FROM {{schema}}.products WHERE {where} LIMIT {cap + 1})
SELECT {_P_COLUMNS}, r.k AS sort_key, c.found
FROM (SELECT count(*) AS found FROM m) c
LEFT JOIN LATERAL (SELECT product_id, k FROM m {"WHERE NOT x" if q.exclude else ""}
                   ORDER BY {_order(q)} LIMIT {need}) r ON true
LEFT JOIN {{schema}}.products p ON p.product_id = r.product_id
ORDER BY {_order(q, "r.k", "r.product_id")}""")
    records = await session.fetch_planned(sql, *q.params.values)
    if records[0]["found"] > cap:
        return None
    return Page(_rows(records), None)


async def _ordered(session: Session, q: PageQuery, need: int, budget: int) -> tuple[Page, bool]:
    """The matches among the next ``budget`` rows of the order (read lazily: the walk stops at
    the ``need``-th match); True when that settles the page (``need`` found, or the order ended)."""
    ok = _conjunction([*q.where, *([f"NOT ({q.exclude})"] if q.exclude else [])])
    bound = _conjunction([*q.along, *([q.after] if q.after else [])])
    sql = Sql(f"""
SELECT {", ".join(c.strip() for c in COLUMNS.split(","))}, k AS sort_key FROM (
    SELECT *, {q.key} AS k FROM {{schema}}.products WHERE {bound} ORDER BY {_order(q, q.key)} LIMIT {budget}) x
WHERE {ok} LIMIT {need}""")
    rows = _rows(await session.fetch_planned(sql, *q.params.values))
    if len(rows) >= need:
        return Page(rows, None), True
    # Short: did the order end, or the walk's budget? The row the walk stopped at tells.
    last = await session.fetch_planned(Sql(
        f"SELECT {q.key} AS k, product_id FROM {{schema}}.products WHERE {bound} AND {q.params.unused()} "
        f"ORDER BY {_order(q, q.key)} OFFSET {budget - 1} LIMIT 1"), *q.params.values)
    if not last:
        return Page(rows, None), True
    return Page(rows, (last[0]["k"], last[0]["product_id"])), False


async def bounded(session: Session, q: PageQuery, need: int) -> Page:
    """Up to ``need`` products in order after the cursor; fewer with ``resume`` set when the
    page could not be finished within the bounds (more may follow from there)."""
    matching, everything = await estimate(session, [*q.where, *([q.after] if q.after else [])], q.params)
    expected = need * everything / max(matching, 1.0)  # rows to walk in order for ``need`` matches
    # Excluding rows (rank 2) leaves fewer than estimated, maybe none: collect them when that is bounded.
    collect_first = matching <= FILTER_FIRST_MAX and (
        q.exclude is not None or matching < expected * _WALK_COST.get(q.key, 1.0))
    if collect_first:
        found = await _filter_first(session, q, need, int(min(FILTER_FIRST_MAX, max(4 * matching, 1000))))
        if found is not None:
            return found
    # Generous: matches may lie in clusters of the order (titles sort by their first words).
    budget = int(min(ORDERED_MAX, max(ORDERED_MIN, 20 * expected)))
    walked, settled = await _ordered(session, q, need, budget)
    if settled:
        return walked
    if not collect_first:
        found = await _filter_first(session, q, need, FILTER_FIRST_MAX)
        if found is not None:
            return found
    return walked
