"""Expires lapsed reservations in every tenant schema, every few seconds, so units
held by abandoned checkouts become available again (one statement finds the schemas
that have any). Replicas may all run it:
each locks the rows it expires with SKIP LOCKED, so none waits for another."""

from __future__ import annotations

import asyncio

import structlog

from services.catalog.inventory import SWEEP_BATCH, Inventory
from services.catalog.store.reservations import LAPSED
from services.runtime.db import Database, tenant_of
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.catalog.sweeper")


class ReservationSweeper:
    def __init__(self, db: Database, inventory: Inventory, every_seconds: float = 2.0) -> None:
        self._db = db
        self._inventory = inventory
        self._every_seconds = every_seconds
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog-reservation-sweeper")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def sweep_once(self) -> int:
        """Expires every lapsed reservation of every tenant; how many."""
        expired = 0
        for schema in await self._db.schemas_where("reservations", LAPSED, await self._db.tenant_schemas()):
            tenant = tenant_of(schema)
            while True:
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
