"""Page size and opaque page tokens for ListTenants (oldest first: the token
carries the sort key of the last tenant of the previous page)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.runtime.errors import InvalidArgument
from services.tenant.domain.tenant import TENANT_ID

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TOKEN_MAX = 200


@dataclass(frozen=True)
class Cursor:
    """Position after the tenant created at ``create_time`` with id ``tenant_id``."""

    create_time: datetime
    tenant_id: str


def page_size(value: int) -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgument.field("page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0 means {DEFAULT_PAGE_SIZE})")
    return value


def encode(cursor: Cursor) -> str:
    micros = (cursor.create_time - _EPOCH) // timedelta(microseconds=1)
    raw = json.dumps([micros, cursor.tenant_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str) -> Cursor | None:
    """None for the first page; INVALID_ARGUMENT for anything we did not hand out."""
    if not token:
        return None
    bad = InvalidArgument.field("page_token", "is not a page token from a previous ListTenants response")
    if len(token) > _TOKEN_MAX:
        raise bad
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        micros, tenant_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise bad from exc
    if not isinstance(micros, int) or not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id):
        raise bad
    try:
        create_time = _EPOCH + timedelta(microseconds=micros)
    except OverflowError as exc:
        raise bad from exc
    return Cursor(create_time, tenant_id)
