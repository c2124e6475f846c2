"""NATS subjects and headers of integration events (see DESIGN "Events").

Subject: ``commerce.<domain>.v1.<event_snake_name>.<tenant_id>``, from the event
message's Protobuf package and name, e.g. ``commerce.order.v1.order_placed.acme``.
"""

from __future__ import annotations

import re
from typing import Any

STREAM = "COMMERCE"
STREAM_SUBJECTS = ["commerce.>"]
DLQ_STREAM = "COMMERCE_DLQ"
DLQ_PREFIX = "dlq."
DLQ_SUBJECTS = [DLQ_PREFIX + ">"]
# How long JetStream keeps events: a consumer away longer misses them; a consumer's inbox
# entries older than this (plus a margin) can be forgotten, their event can never come back.
STREAM_MAX_AGE_SECONDS = 7 * 86400.0
DLQ_MAX_AGE_SECONDS = 30 * 86400.0

MSG_ID = "Nats-Msg-Id"
EVENT_TYPE = "Commerce-Event-Type"
TENANT = "Commerce-Tenant"
TRACEPARENT = "traceparent"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    return _CAMEL.sub("_", name).lower()


def subject_for(descriptor: Any, tenant_id: str) -> str:
    package = descriptor.file.package
    if not package.startswith("commerce."):
        raise ValueError(f"{descriptor.full_name} is not a commerce integration event")
    return f"{package}.{snake(descriptor.name)}.{tenant_id}"


def subject_pattern(descriptor: Any, tenant: str = "*") -> str:
    """The subject filter for one event type (every tenant by default)."""
    return f"{descriptor.file.package}.{snake(descriptor.name)}.{tenant}"
