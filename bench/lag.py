"""Outbox -> consumer lag of OrderConfirmed: from each event's occur_time (in its
EventMetadata, read back from JetStream) to its row in each consuming durable's inbox
(processed_time: now() of the consumer's transaction, i.e. its start; one machine, one clock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.jetstream import Event
from bench.load import percentile
from bench.view import MeshView


@dataclass(frozen=True)
class Lag:
    consumer: str
    events: int
    missing: int  # events of the window with no inbox row of this consumer
    p50_ms: float
    p99_ms: float
    max_ms: float

    def as_json(self) -> dict[str, Any]:
        return {"consumer": self.consumer, "events": self.events, "missing": self.missing,
                "p50_ms": round(self.p50_ms, 1), "p99_ms": round(self.p99_ms, 1), "max_ms": round(self.max_ms, 1)}


async def consumer_lags(view: MeshView, events: list[Event]) -> list[Lag]:
    """The lag of ``events`` (all of one subject) at every durable consumer that takes them."""
    if not events:
        return []
    occurred = {e.event_id: e.occur_time for e in events if e.occur_time is not None}
    lags = []
    for durable in await view.stream.durables():
        if not durable.wants(events[0].subject):
            continue
        processed: dict[str, Any] = {}
        for database, schema in await view.observer.inbox_tables():
            rows = await view.observer.fetch(
                database, f"SELECT event_id, processed_time FROM {schema}.inbox WHERE consumer = $1 "
                "AND event_id = ANY($2::text[])", durable.name, list(occurred))
            processed.update({r["event_id"]: r["processed_time"] for r in rows})
        seconds = [(processed[e] - t).total_seconds() for e, t in occurred.items() if e in processed]
        lags.append(Lag(durable.name, len(occurred), len(occurred) - len(seconds), percentile(seconds, 0.5) * 1000,
                        percentile(seconds, 0.99) * 1000, max(seconds, default=float("nan")) * 1000))
    return lags
