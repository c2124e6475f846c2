"""What the benchmarks read from JetStream: the stream's events (subject, event id and occur
time from each event's field 1, a ``commerce.common.v1.EventMetadata``), its durable
consumers (filters, what they still have to take) and how many messages a subject holds."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import nats
import nats.errors
from commerce.common.v1 import event_pb2
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

STREAM = "COMMERCE"
ALL_SUBJECTS = "commerce.>"


@dataclass(frozen=True)
class Event:
    seq: int  # stream sequence
    subject: str
    event_id: str
    occur_time: datetime | None


@dataclass(frozen=True)
class Durable:
    name: str
    subjects: tuple[str, ...]  # filter subjects (may hold wildcards)
    pending: int  # not yet delivered
    ack_pending: int  # delivered, not yet acknowledged

    def wants(self, subject: str) -> bool:
        return any(matches(subject, pattern) for pattern in self.subjects)


def matches(subject: str, pattern: str) -> bool:
    """NATS subject matching: ``*`` is one token, a final ``>`` one or more."""
    tokens, wanted = subject.split("."), pattern.split(".")
    for n, want in enumerate(wanted):
        if want == ">":
            return len(tokens) > n
        if n >= len(tokens) or (want != "*" and want != tokens[n]):
            return False
    return len(tokens) == len(wanted)


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def event_metadata(payload: bytes) -> event_pb2.EventMetadata:
    """Field 1 of any integration event (an empty EventMetadata when absent)."""
    at = 0
    while at < len(payload):
        key, at = _varint(payload, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, at = _varint(payload, at)
        elif wire == 2:
            size, at = _varint(payload, at)
            if field == 1:
                return event_pb2.EventMetadata.FromString(payload[at:at + size])
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            break
    return event_pb2.EventMetadata()


class Stream:
    """A connection to the mesh's NATS, for reading the COMMERCE stream."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.js: JetStreamContext = client.jetstream()

    @classmethod
    async def connect(cls, url: str) -> Stream:
        return cls(await nats.connect(url, name="bench-reader", max_reconnect_attempts=3))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()

    async def last_seq(self) -> int:
        return int((await self.js.stream_info(STREAM)).state.last_seq)

    async def count(self, subject: str) -> int:
        """Messages on ``subject`` (no wildcards) in the stream."""
        state = (await self.js.stream_info(STREAM, subjects_filter=subject)).state
        return int((state.subjects or {}).get(subject, 0))

    async def durables(self) -> list[Durable]:
        found = []
        for info in await self.js.consumers_info(STREAM):
            config = info.config
            if not config.durable_name:
                continue
            subjects = tuple(config.filter_subjects or ([config.filter_subject] if config.filter_subject else
                                                        [ALL_SUBJECTS]))
            found.append(Durable(config.durable_name, subjects, int(info.num_pending or 0),
                                 int(info.num_ack_pending or 0)))
        return sorted(found, key=lambda d: d.name)

    async def events(self, first_seq: int = 1, batch: int = 1000) -> list[Event]:
        """Every event of the stream from ``first_seq`` up to its last message now."""
        last = await self.last_seq()
        if last < first_seq:
            return []
        name = f"bench-reader-{uuid.uuid4().hex[:12]}"
        await self.js.add_consumer(STREAM, ConsumerConfig(
            name=name, ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=first_seq, filter_subject=ALL_SUBJECTS, inactive_threshold=60.0, mem_storage=True))
        sub = await self.js.pull_subscribe_bind(name, stream=STREAM)
        found: list[Event] = []
        try:
            while not found or found[-1].seq < last:
                try:
                    messages = await sub.fetch(batch, timeout=5.0)
                except (TimeoutError, nats.errors.TimeoutError):
                    break  # the rest was deleted (retention); take what there is
                for msg in messages:
                    meta = event_metadata(msg.data)
                    occur = meta.occur_time.ToDatetime(tzinfo=UTC) if meta.HasField("occur_time") else None
                    found.append(Event(msg.metadata.sequence.stream, msg.subject, meta.event_id, occur))
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            with contextlib.suppress(Exception):
                await self.js.delete_consumer(STREAM, name)
        return [event for event in found if event.seq <= last]


@dataclass(frozen=True)
class Flow:
    """The events of one subject (tenant token left out) and the durables that take them."""

    subject: str
    count: int
    consumers: tuple[str, ...]


def flows(events: list[Event], durables: list[Durable]) -> list[Flow]:
    counts: dict[str, int] = {}
    sample: dict[str, str] = {}
    for event in events:
        kind = event.subject.rsplit(".", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
        sample.setdefault(kind, event.subject)
    return [Flow(kind, n, tuple(d.name for d in durables if d.wants(sample[kind])))
            for kind, n in sorted(counts.items(), key=lambda item: -item[1])]
