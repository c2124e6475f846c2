"""Expires lapsed reservations in every tenant schema, every few seconds, so units
held by abandoned checkouts become available again (one statement finds which have any, among
the schemas whose reservations were written within the longest TTL: services/runtime/busy.py,
and every schema each minute). Replicas may all run it:
each locks the rows it expires with SKIP LOCKED, so none waits for another."""

from __future__ import annotations

import asyncio

import structlog

from services.catalog.domain.reservation import TTL_MAX
from services.catalog.inventory import SWEEP_BATCH, Inventory
from services.catalog.store.reservations import LAPSED
from services.runtime.busy import BusySchemas
from services.runtime.db import Database, looking_around, tenant_of
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.catalog.sweeper")


class ReservationSweeper:
    def __init__(self, db: Database, inventory: Inventory, every_seconds: float = 2.0) -> None:
        self._db = db
        self._inventory = inventory
        self._every_seconds = every_seconds
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        # A reservation lapses at most TTL_MAX after it was written: schemas whose reservations
        # were written that lately, and every schema each minute (reservations written before this
        # process started, in a schema quiet since, are given back up to a minute after they lapse).
        self._busy = BusySchemas(db, "reservations", recent_seconds=TTL_MAX + 60.0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog-reservation-sweeper")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def sweep_once(self) -> int:
        """Expires every lapsed reservation of every tenant; how many."""
        expired = 0
        looked_at = await self._busy.schemas(await self._db.tenant_schemas())
        for schema in await self._db.schemas_where("reservations", LAPSED, looked_at):
            tenant = tenant_of(schema)
            while True:
                with looking_around():
                    count = await self._inventory.sweep(tenant, SWEEP_BATCH)
                expired += count
                if count < SWEEP_BATCH:
                    break
        return expired

    async def _run(self) -> None:
        while True:
            try:
                expired = await self.sweep_once()
                if expired:
                    log.info("expired lapsed reservations", count=expired)
                if self._failing:
                    log.info("reservation sweeper recovered")
                self._failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:  # once per outage, not every few seconds
                    log.warning("reservation sweep failed; retrying", error=str(exc))
                self._failing = True
            await asyncio.sleep(self._every_seconds)
