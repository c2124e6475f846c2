"""What a checkout benchmark watches while it runs: the mesh's processes (CPU), the
services' metrics, its PostgreSQL (as the observer role) and its JetStream stream; and
``drain()``: wait until every order has settled and every event has been consumed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

from bench import metrics
from bench.cpu import CpuClock
from bench.harness import Harness
from bench.jetstream import Stream
from bench.observer import Observer

# Where a checkout ends (and what may follow, none of which the benchmark asks for); any other
# status, today PENDING, RESERVED or PAID, or one a rewrite adds, is an order still in flight.
SETTLED = frozenset({"CONFIRMED", "FAILED", "CANCELLED", "SHIPPED", "DELIVERED", "RETURN_REQUESTED", "RETURNED",
                     "REFUNDED"})
CONFIRMED = "CONFIRMED"
METRICS_OF = ("tenant", "catalog", "cart", "order", "payment", "notifications")
POLL_SECONDS = 0.5
STABLE_POLLS = 3  # the same counts this many polls in a row: nothing is moving any more


@dataclass(frozen=True)
class Drained:
    complete: bool
    seconds: float
    note: str  # what was still moving, when not complete


@dataclass(frozen=True)
class _Progress:
    in_flight: int
    confirmed: int
    confirmed_events: int
    waiting: int  # messages the durables have yet to take or acknowledge
    inbox: tuple[tuple[str, int], ...]  # rows by consumer
    last_seq: int

    def settled(self) -> bool:
        return self.in_flight == 0 and self.confirmed == self.confirmed_events and self.waiting == 0

    def explain(self) -> str:
        return (f"{self.in_flight} orders in flight, {self.confirmed} confirmed vs {self.confirmed_events} "
                f"OrderConfirmed events in the stream, {self.waiting} messages not yet taken by the consumers")


def mesh_processes(harness: Harness) -> dict[str, int | None]:
    """Every process of the mesh, by name (the load generator is not one of them)."""
    mesh = harness.mesh
    pids: dict[str, int | None] = {name: process.pid for name, process in mesh.processes.items()}
    pids["envoy"] = mesh.envoy.process.pid if mesh.envoy else None
    pids["nats"] = mesh.nats.process.pid if mesh.nats and mesh.nats.process else None
    pids["postgres"] = mesh.postgres.process.pid if mesh.postgres and mesh.postgres.process else None
    return pids


class MeshView:
    def __init__(self, harness: Harness, observer: Observer, stream: Stream) -> None:
        self.harness = harness
        self.observer = observer
        self.stream = stream
        self.schema = harness.shop.schema
        self.order_db = harness.database_of("order")
        self.cpu = CpuClock(mesh_processes(harness), exclude=observer.backend_pids)
        self.metrics_urls = {name: harness.metrics_url(name) for name in METRICS_OF}
        self.confirmed_subject = f"commerce.order.v1.order_confirmed.{harness.shop.tenant_id}"

    @classmethod
    async def open(cls, harness: Harness) -> MeshView:
        return cls(harness, await Observer.open(harness), await Stream.connect(harness.mesh.nats_url))

    async def close(self) -> None:
        await self.stream.close()
        await self.observer.close()

    async def order_statuses(self) -> Counter[str]:
        rows = await self.observer.fetch(self.order_db, f"SELECT status, count(*) AS n FROM {self.schema}.orders "
                                         "GROUP BY status")
        return Counter({r["status"]: int(r["n"]) for r in rows})

    async def inbox_counts(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for database, schema in await self.observer.inbox_tables():
            for r in await self.observer.fetch(database, f"SELECT consumer, count(*) AS n FROM {schema}.inbox "
                                               "GROUP BY consumer"):
                counts[r["consumer"]] += int(r["n"])
        return counts

    async def _progress(self) -> _Progress:
        statuses = await self.order_statuses()
        durables = await self.stream.durables()
        return _Progress(sum(n for s, n in statuses.items() if s not in SETTLED), statuses[CONFIRMED],
                         await self.stream.count(self.confirmed_subject),
                         sum(d.pending + d.ack_pending for d in durables),
                         tuple(sorted((await self.inbox_counts()).items())), await self.stream.last_seq())

    async def drain(self, limit_s: float = 90.0) -> Drained:
        """Until no order is in flight, every confirmed order's OrderConfirmed is in the stream,
        every durable consumer has taken and acknowledged everything, and the inboxes and the
        stream have stopped growing (then no outbox row is waiting, where the services say)."""
        started = time.monotonic()
        previous: _Progress | None = None
        stable = 0
        while True:
            now = await self._progress()
            stable = stable + 1 if now.settled() and now == previous else 0
            if stable >= STABLE_POLLS - 1:
                pending = await asyncio.to_thread(metrics.outbox_pending, self.metrics_urls)
                if not pending:
                    return Drained(True, time.monotonic() - started, "")
                stable = 0
            if time.monotonic() - started > limit_s:
                return Drained(False, time.monotonic() - started, now.explain() if not now.settled() else
                               "events still flowing")
            previous = now
            await asyncio.sleep(POLL_SECONDS)
