"""Bulk import (upsert by sku, with stock) and export of a tenant's catalog.

An import batch reads which skus exist (one statement), then writes every entry it
can in one transaction (store/imports.py); refused entries are reported one by one
and never fail the others. Should a reservation raise a product's reserved units
above the on_hand being written in between, the CHECK on stock refuses it and the
batch is read and written again (entries now below what is reserved are refused).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]

from services.catalog import events
from services.catalog.cache import ProductCache, SearchCache
from services.catalog.domain.ids import new_product_ids
from services.catalog.domain.imports import Accepted, Entry, Outcome, below_reserved, checked_batch
from services.catalog.domain.product import Product
from services.catalog.domain.reservation import LOW_STOCK_THRESHOLD, Taken
from services.catalog.store import imports as store
from services.runtime.db import Database
from services.runtime.errors import Aborted, DomainError, InvalidArgument

ATTEMPTS = 3
EXPORT_BATCH, EXPORT_BATCH_MAX = 500, 1000


@dataclass(frozen=True)
class Result:
    index: int
    sku: str
    product_id: str
    outcome: Outcome
    error: DomainError | None = None


class Importer:
    def __init__(self, db: Database, products: ProductCache, searches: SearchCache) -> None:
        self._db = db
        self._products = products
        self._searches = searches

    async def import_products(self, tenant_id: str, entries: list[Entry]) -> list[Result]:
        accepted, refused = checked_batch(entries)
        for _ in range(ATTEMPTS):
            try:
                results = await self._attempt(tenant_id, accepted)
            except asyncpg.CheckViolationError:  # reserved rose above an on_hand meanwhile: read again
                continue
            results += [Result(r.index, r.sku, "", Outcome.FAILED, r.error) for r in refused]
            return sorted(results, key=lambda r: r.index)
        raise Aborted("stock kept changing under this import; send it again", reason="CONCURRENT_MODIFICATION")

    async def _attempt(self, tenant_id: str, accepted: list[Accepted]) -> list[Result]:
        async with self._db.session(tenant_id) as session:
            found = await store.existing(session, [a.fields.sku for a in accepted])
        results: list[Result] = []
        items: list[tuple[Accepted, str, str]] = []
        # new products' ids ascend in the order of the entries: oldest first lists them as sent
        fresh = iter(new_product_ids(sum(1 for a in accepted if a.fields.sku not in found)))
        for a in accepted:
            was = found.get(a.fields.sku)
            if was is not None and a.on_hand is not None and a.on_hand < was.reserved:
                refusal = below_reserved(a.on_hand, was.reserved)
                results.append(Result(a.index, a.fields.sku, "", Outcome.FAILED, refusal))
                continue
            status = a.fields.status.value if (a.status_given or was is None) else was.status
            items.append((a, was.product_id if was is not None else next(fresh), status))
        if not items:
            return results
        async with self._db.transaction(tenant_id) as session:
            written = await store.write(session, items, LOW_STOCK_THRESHOLD,
                                        {e.product_id for e in found.values()})
            rows = events.products_imported_rows(tenant_id, written.created, written.updated)
            skus = {p.fields.sku: p.product_id for p in (*written.created, *written.updated)}
            known = {**{sku: e.product_id for sku, e in found.items()}, **skus}
            rows += events.low_stock_rows(tenant_id, _low_stock(written.low_stock, known))
            await events.write(session, rows)
            changed = [p.product_id for p in (*written.created, *written.updated)]
            await store.notify_changed(session, changed)
            missing = [a.fields.sku for a, pid, _ in items if a.fields.sku not in skus and a.fields.sku not in found]
            if missing:  # created by someone else since we looked, and left as it was
                skus.update({sku: e.product_id for sku, e in (await store.existing(session, missing)).items()})
        self._evict(tenant_id, changed)
        created = {p.product_id for p in written.created}
        updated = {p.product_id for p in written.updated} | written.stock_changed
        for a, planned, _ in items:
            was = found.get(a.fields.sku)
            product_id = skus.get(a.fields.sku) or (was.product_id if was is not None else planned)
            outcome = (Outcome.CREATED if product_id in created else
                       Outcome.UPDATED if product_id in updated else Outcome.UNCHANGED)
            results.append(Result(a.index, a.fields.sku, product_id, outcome))
        return results

    def _evict(self, tenant_id: str, product_ids: Sequence[str]) -> None:
        """This replica need not wait for its own notification."""
        if product_ids:
            self._searches.invalidate(tenant_id)
            for product_id in product_ids:
                self._products.evict(tenant_id, product_id)

    async def export(self, tenant_id: str, batch_size: int) -> AsyncIterator[list[tuple[Product, int]]]:
        """Every product with its on_hand, in product_id order, ``batch_size`` at a time."""
        if not 0 <= batch_size <= EXPORT_BATCH_MAX:
            raise InvalidArgument.field("batch_size", f"must be 0-{EXPORT_BATCH_MAX} (0 means {EXPORT_BATCH})")
        size = batch_size or EXPORT_BATCH
        after = ""
        while True:
            async with self._db.session(tenant_id) as session:  # no connection held while the client reads
                batch = await store.export_batch(session, after, size)
            if batch:
                yield batch
            if len(batch) < size:
                return
            after = batch[-1][0].product_id


def _low_stock(crossed: list[tuple[str, int]], skus: dict[str, str]) -> list[Taken]:
    sku_of = {product_id: sku for sku, product_id in skus.items()}
    return [Taken(product_id, sku_of.get(product_id, ""), 0, available) for product_id, available in crossed]
