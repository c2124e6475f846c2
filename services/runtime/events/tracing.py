"""W3C Trace Context ``traceparent`` carried from a request (or a consumed event)
to the events it causes. With tracing on (services/runtime/telemetry.py) it is the
current span's; off, the one the request or event came with, passed along as it is."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

from services.runtime import telemetry

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")
_current: ContextVar[str] = ContextVar("traceparent", default="")


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def is_valid(traceparent: str) -> bool:
    match = _TRACEPARENT.fullmatch(traceparent)
    return bool(match) and match.group(1) != "0" * 32 and match.group(2) != "0" * 16  # type: ignore[union-attr]


def child_of(traceparent: str) -> str:
    """A new span id in the same trace (a fresh trace when ``traceparent`` is not valid)."""
    if not is_valid(traceparent):
        return new_traceparent()
    trace_id = traceparent[3:35]
    flags = traceparent[-2:]
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"


def current_traceparent() -> str:
    if telemetry.enabled():
        return telemetry.traceparent() or _current.get()
    return _current.get()


def set_traceparent(traceparent: str) -> object:
    return _current.set(traceparent)


def reset_traceparent(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
