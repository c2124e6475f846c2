"""Finding an event's message class from its type name (the Commerce-Event-Type
header), among every integration event the contracts define."""

from __future__ import annotations

from commerce.catalog.v1 import catalog_events_pb2  # noqa: F401  (registers the event types)
from commerce.order.v1 import order_events_pb2  # noqa: F401
from commerce.payment.v1 import payment_events_pb2  # noqa: F401
from commerce.tenant.v1 import tenant_events_pb2  # noqa: F401
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message


class UnknownEventType(LookupError):
    pass


def message_class(event_type: str) -> type[Message]:
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(event_type)
    except KeyError as exc:
        raise UnknownEventType(event_type) from exc
    if "metadata" not in descriptor.fields_by_name:
        raise UnknownEventType(event_type)
    return message_factory.GetMessageClass(descriptor)


def decode(event_type: str, payload: bytes) -> Message:
    event = message_class(event_type)()
    event.ParseFromString(payload)
    return event
