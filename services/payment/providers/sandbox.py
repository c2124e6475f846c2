"""The built-in "sandbox" provider: deterministic by payment token, no network.

Tokens (documented in proto/commerce/payment/v1/payment.proto):
  tok_sandbox_ok                   authorized
  tok_sandbox_declined             DECLINED, decline_reason CARD_DECLINED
  tok_sandbox_insufficient_funds   DECLINED, decline_reason INSUFFICIENT_FUNDS
  tok_sandbox_error                FAILED, decline_reason PROVIDER_ERROR
  tok_sandbox_timeout              authorized by the provider, but the first answer never
                                   arrives in time (the call hangs); a retry with the same
                                   idempotency key gets the authorization at once
  anything else                    DECLINED, decline_reason INVALID_PAYMENT_TOKEN

Like a real provider it remembers every operation by idempotency key, in its own
table ``sandbox_operations`` of the tenant's schema, written in its own transaction
(it is "remote": what it did survives our rollback and our restarts).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from sqlalchemy import CHAR, BigInteger, Column, DateTime, MetaData, Table, Text, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payment.domain.payment import Money
from services.payment.providers.base import Authorization, IdempotencyConflict, Operation, Outcome
from services.runtime.db import Database

NAME = "sandbox"
TOKEN_OK = "tok_sandbox_ok"
TOKEN_DECLINED = "tok_sandbox_declined"
TOKEN_INSUFFICIENT_FUNDS = "tok_sandbox_insufficient_funds"
TOKEN_ERROR = "tok_sandbox_error"
TOKEN_TIMEOUT = "tok_sandbox_timeout"

_BY_TOKEN = {
    TOKEN_OK: (Outcome.APPROVED, ""),
    TOKEN_TIMEOUT: (Outcome.APPROVED, ""),
    TOKEN_DECLINED: (Outcome.DECLINED, "CARD_DECLINED"),
    TOKEN_INSUFFICIENT_FUNDS: (Outcome.DECLINED, "INSUFFICIENT_FUNDS"),
    TOKEN_ERROR: (Outcome.FAILED, "PROVIDER_ERROR"),
}

metadata = MetaData()
sandbox_operations = Table(
    "sandbox_operations", metadata,
    Column("kind", Text, primary_key=True),  # authorize | capture | void | refund
    Column("idempotency_key", Text, primary_key=True),
    Column("reference", Text, nullable=False),  # the sandbox's id of what it did
    Column("payment_reference", Text, nullable=False),  # the payment it concerns
    Column("outcome", Text, nullable=False),
    Column("decline_reason", Text, nullable=False),
    Column("currency_code", CHAR(3), nullable=False),
    Column("amount_minor", BigInteger, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class _Done:
    reference: str
    outcome: Outcome
    decline_reason: str
    first_time: bool


class SandboxProvider:
    name = NAME

    def __init__(self, db: Database, tenant_id: str, hang_seconds: float = 30.0) -> None:
        self._db = db
        self._tenant_id = tenant_id
        self._hang_seconds = hang_seconds

    async def _once(self, kind: str, key: str, payment_reference: str, amount: Money, outcome: Outcome,
                    decline_reason: str, prefix: str) -> _Done:
        """Performs the operation the first time ``key`` is seen, else returns what was done then."""
        async with self._db.tenant(self._tenant_id) as conn:
            reference = payment_reference if kind == "authorize" else f"{prefix}_{secrets.token_hex(12)}"
            inserted = (await conn.execute(
                insert(sandbox_operations).values(
                    kind=kind, idempotency_key=key, reference=reference, payment_reference=payment_reference,
                    outcome=outcome.value, decline_reason=decline_reason, currency_code=amount.currency_code,
                    amount_minor=amount.amount_minor, create_time=func.now())
                .on_conflict_do_nothing().returning(sandbox_operations.c.reference)
            )).first()
            if inserted is not None:
                return _Done(reference, outcome, decline_reason, True)
            return await _recorded(conn, kind, key, None if kind == "authorize" else payment_reference, amount)

    async def authorize(self, idempotency_key: str, amount: Money, token: str) -> Authorization:
        outcome, reason = _BY_TOKEN.get(token, (Outcome.DECLINED, "INVALID_PAYMENT_TOKEN"))
        done = await self._once("authorize", idempotency_key, f"sbx_pay_{secrets.token_hex(12)}", amount,
                                outcome, reason, "sbx_pay")
        if done.first_time and token == TOKEN_TIMEOUT:
            await asyncio.sleep(self._hang_seconds)  # the answer is lost in the network
        return Authorization(done.outcome, done.reference, done.decline_reason)

    async def capture(self, idempotency_key: str, reference: str, amount: Money) -> Operation:
        done = await self._once("capture", idempotency_key, reference, amount, Outcome.APPROVED, "", "sbx_cap")
        return Operation(done.reference)

    async def void(self, idempotency_key: str, reference: str) -> Operation:
        done = await self._once("void", idempotency_key, reference, Money("XXX", 0), Outcome.APPROVED, "", "sbx_void")
        return Operation(done.reference)

    async def refund(self, idempotency_key: str, reference: str, amount: Money) -> Operation:
        done = await self._once("refund", idempotency_key, reference, amount, Outcome.APPROVED, "", "sbx_rfd")
        return Operation(done.reference)


async def _recorded(conn: AsyncConnection, kind: str, key: str, payment_reference: str | None,
                    amount: Money) -> _Done:
    """What was done the first time ``key`` was used; refuses the key for other parameters."""
    row = (await conn.execute(
        select(sandbox_operations).where(sandbox_operations.c.kind == kind,
                                         sandbox_operations.c.idempotency_key == key)
    )).one()
    if (row.currency_code, row.amount_minor) != (amount.currency_code, amount.amount_minor) or \
            (payment_reference is not None and row.payment_reference != payment_reference):
        raise IdempotencyConflict(f"{kind} key {key!r} was used with other parameters")
    return _Done(row.reference, Outcome(row.outcome), row.decline_reason, False)


class SandboxFactory:
    def __init__(self, db: Database, hang_seconds: float = 30.0) -> None:
        self._db = db
        self._hang_seconds = hang_seconds

    def __call__(self, tenant_id: str) -> SandboxProvider:
        return SandboxProvider(self._db, tenant_id, self._hang_seconds)
