"""The recovery worker: finishes or compensates sagas left mid-way (a crashed
process, a stalled step). Every ``interval`` it asks, in one statement, the tenant
schemas whose orders were written lately (services/runtime/busy.py; every schema each minute)
which have unfinished sagas whose lease ran out and that nothing touched for ``idle_seconds``
(FOR UPDATE SKIP LOCKED, so replicas share the work), takes their lease and resumes
them from the persisted step. Runs once at start-up too, and looks in every schema until
the sagas a dead process left have had time to stall."""

from __future__ import annotations

import asyncio

import structlog

from services.order.observe import OLDEST_UNFINISHED, RESUMED
from services.order.saga import SagaRunner
from services.order.store import orders as store
from services.runtime.busy import BusySchemas
from services.runtime.db import Database, looking_around, tenant_of
from services.runtime.tasks import cancel_and_wait

log = structlog.get_logger("commerce.order.recovery")


class RecoveryWorker:
    def __init__(self, db: Database, runner: SagaRunner, *, interval_seconds: float = 5.0,
                 idle_seconds: float = 10.0, batch: int = 20) -> None:
        self._db = db
        self._runner = runner
        self._interval = interval_seconds
        self._idle = idle_seconds
        self._batch = batch
        self._task: asyncio.Task[None] | None = None
        # A saga stalls within its lease + idle time of its last write: schemas whose orders were
        # written that lately (every schema each minute; every schema for that long after a start,
        # since the process that died may have left a saga in any).
        self._busy = BusySchemas(db, "orders", recent_seconds=runner.lease_seconds + idle_seconds + 30.0,
                                 recent_at_start=True)
        # Since the oldest unfinished saga last moved, by schema with a stalled saga when last looked at
        # (schemas without one have none older than the idle time; the gauge is their maximum).
        self._oldest: dict[str, float] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="order-recovery")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.recover_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recovery pass failed")
            await asyncio.sleep(self._interval)

    async def recover_once(self) -> int:
        """Resumes every stalled saga found now; how many were resumed."""
        resumed = 0
        looked_at = await self._busy.schemas(await self._db.tenant_schemas())
        for schema in looked_at:  # looked at now: stalled sagas there, if any, are found below
            self._oldest.pop(schema, None)
        for schema in await self._db.schemas_where("orders", store.STALLED_EXISTS, looked_at, self._idle):
            tenant_id = tenant_of(schema)
            with looking_around():
                self._oldest[schema], taken = await self._take_stalled(tenant_id)
            for order_id in taken:
                RESUMED.inc()
                log.info("resuming saga", tenant_id=tenant_id, order_id=order_id)
                try:
                    await self._runner.run(tenant_id, order_id)
                    resumed += 1
                except Exception:
                    log.exception("resumed saga failed", tenant_id=tenant_id, order_id=order_id)
        OLDEST_UNFINISHED.set(max(self._oldest.values(), default=0.0))
        return resumed

    async def _take_stalled(self, tenant_id: str) -> tuple[float, list[str]]:
        """Since the tenant's oldest unfinished saga last moved, and its stalled sagas, their lease
        taken by this worker."""
        taken = []
        async with self._db.tenant(tenant_id) as conn:
            oldest = await store.oldest_unfinished_seconds(conn)
            for order_id in await store.stalled(conn, self._idle, self._batch):
                if await store.take_lease(conn, order_id, self._runner.lease_seconds):
                    taken.append(order_id)
        return oldest, taken
