"""Idempotent mutations (AIP-155): a retry with the same ``request_id`` returns
the first answer instead of doing the work again.

Every service that accepts request_ids creates ``idempotency_keys`` in each
tenant schema (see its migrations). Inside the mutation's own transaction:

    async with db.tenant(tenant) as conn:
        if (previous := await replay(conn, key, Response)) is not None:
            return previous
        ... do the work ...
        await remember(conn, key, response)

``replay`` takes a transaction-scoped advisory lock on the key, so concurrent
retries of one request queue behind the first and then see its answer.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message
from sqlalchemy import Column, DateTime, LargeBinary, MetaData, Table, Text, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.errors import FailedPrecondition, InvalidArgument
from services.runtime.validation import REQUEST_ID, REQUEST_ID_RULE

M = TypeVar("M", bound=Message)

metadata = MetaData()
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("request_id", Text, primary_key=True),
    Column("method", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("response", LargeBinary, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True)
class IdempotencyKey:
    request_id: str
    method: str
    fingerprint: str


def key_for(method: str, request: Message, field: str = "request_id") -> IdempotencyKey | None:
    """None when the request carries no request_id (the call is then not deduplicated)."""
    request_id = getattr(request, field)
    if not request_id:
        return None
    if not REQUEST_ID.fullmatch(request_id):
        raise InvalidArgument.field(field, REQUEST_ID_RULE)
    copy = type(request)()
    copy.CopyFrom(request)
    copy.ClearField(field)
    fingerprint = hashlib.sha256(copy.SerializeToString(deterministic=True)).hexdigest()
    return IdempotencyKey(request_id, method, fingerprint)


async def replay(conn: AsyncConnection, key: IdempotencyKey | None, response_type: type[M]) -> M | None:
    if key is None:
        return None
    await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"{key.method}:{key.request_id}"})
    row = (await conn.execute(
        select(idempotency_keys.c.method, idempotency_keys.c.fingerprint, idempotency_keys.c.response)
        .where(idempotency_keys.c.request_id == key.request_id)
    )).first()
    if row is None:
        return None
    return first_answer(key, row.method, row.fingerprint, row.response, response_type)


def first_answer(key: IdempotencyKey, method: str, fingerprint: str, response: bytes, response_type: type[M]) -> M:
    """The answer stored under ``key.request_id`` (its row's method, fingerprint and
    response), if it answered the same request; REQUEST_ID_REUSED otherwise. For
    callers that read the row themselves (e.g. with the cart in one statement)."""
    if method != key.method or fingerprint != key.fingerprint:
        raise FailedPrecondition("request_id was already used for a different request",
                                 reason="REQUEST_ID_REUSED", metadata={"request_id": key.request_id})
    answer = response_type()
    answer.ParseFromString(response)
    return answer


async def remember(conn: AsyncConnection, key: IdempotencyKey | None, response: Message) -> None:
    if key is None:
        return
    await conn.execute(insert(idempotency_keys).values(
        request_id=key.request_id, method=key.method, fingerprint=key.fingerprint,
        response=response.SerializeToString(deterministic=True),
    ))
