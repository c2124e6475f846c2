"""Page size and opaque page tokens for ListTenants (oldest first: the token
carries the sort key of the last tenant of the previous page)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.runtime import paging
from services.runtime.errors import InvalidArgument
from services.tenant.domain.tenant import TENANT_ID

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Cursor:
    """Position after the tenant created at ``create_time`` with id ``tenant_id``."""

    create_time: datetime
    tenant_id: str


page_size = paging.page_size


def encode(cursor: Cursor) -> str:
    micros = (cursor.create_time - _EPOCH) // timedelta(microseconds=1)
    return paging.pack([micros, cursor.tenant_id])


def decode(token: str) -> Cursor | None:
    """None for the first page; INVALID_ARGUMENT for anything we did not hand out."""
    if not token:
        return None
    bad = InvalidArgument.field("page_token", "is not a page token from a previous ListTenants response")
    data = paging.unpack(token, "ListTenants")
    if not isinstance(data, list) or len(data) != 2:
        raise bad
    micros, tenant_id = data
    if not isinstance(micros, int) or not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id):
        raise bad
    try:
        create_time = _EPOCH + timedelta(microseconds=micros)
    except OverflowError as exc:
        raise bad from exc
    return Cursor(create_time, tenant_id)
