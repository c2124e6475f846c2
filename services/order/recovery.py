"""The recovery worker: finishes or compensates sagas left mid-way (a crashed
process, a stalled step). Every ``interval`` it looks in every tenant schema for
unfinished sagas whose lease ran out and that nothing touched for
``idle_seconds`` (FOR UPDATE SKIP LOCKED, so replicas share the work), takes
their lease and resumes them from the persisted step. Runs once at start-up too."""

from __future__ import annotations

import asyncio

import structlog

from services.order.observe import OLDEST_UNFINISHED, RESUMED
from services.order.saga import SagaRunner
from services.order.store import orders as store
from services.runtime.db import Database, tenant_of
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
        oldest = 0.0
        for schema in sorted(await self._db.tenant_schemas()):
            tenant_id = tenant_of(schema)
            async with self._db.tenant(tenant_id) as conn:
                oldest = max(oldest, await store.oldest_unfinished_seconds(conn))
                taken = []
                for order_id in await store.stalled(conn, self._idle, self._batch):
                    if await store.take_lease(conn, order_id, self._runner.lease_seconds):
                        taken.append(order_id)
            for order_id in taken:
                RESUMED.inc()
                log.info("resuming saga", tenant_id=tenant_id, order_id=order_id)
                try:
                    await self._runner.run(tenant_id, order_id)
                    resumed += 1
                except Exception:
                    log.exception("resumed saga failed", tenant_id=tenant_id, order_id=order_id)
        OLDEST_UNFINISHED.set(oldest)
        return resumed
