"""The built-in "sandbox" provider: deterministic by payment token, no network.

Tokens (documented in proto/commerce/payment/v1/payment.proto):
  tok_sandbox_ok                   authorized (or charged)
  tok_sandbox_declined             DECLINED, decline_reason CARD_DECLINED
  tok_sandbox_insufficient_funds   DECLINED, decline_reason INSUFFICIENT_FUNDS
  tok_sandbox_error                FAILED, decline_reason PROVIDER_ERROR
  tok_sandbox_timeout              authorized (or charged) by the provider, but the first answer
                                   never arrives in time (the call hangs); a retry with the same
                                   idempotency key gets the authorization (or charge) at once
  anything else                    DECLINED, decline_reason INVALID_PAYMENT_TOKEN

A provider outage can be switched on for tests and the chaos run: with the setting
``payment_sandbox_outage_file`` (COMMERCE_PAYMENT_SANDBOX_OUTAGE_FILE; unset in every
deployment, and only this sandbox reads it), every new payment made while that file
exists behaves like tok_sandbox_timeout.

Like a real provider it remembers every operation by idempotency key, in its own
table ``sandbox_operations`` of the tenant's schema, each written by one autocommit
statement on its own connection pool (it is "remote": what it did survives our
rollback and our restarts). A charge (authorize and capture at once) is one operation.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from pathlib import Path

from services.payment.domain.payment import Money
from services.payment.providers.base import Authorization, IdempotencyConflict, Operation, Outcome
from services.runtime.db import Database
from services.runtime.sql import Sql

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
# Operations that create a payment: their reference is the payment's, any earlier one of the
# key is the same payment whatever reference the retry proposes.
_NEW_PAYMENT = frozenset({"authorize", "charge"})

# The operation the first time its (kind, key) is seen, else the one recorded then; either
# way one row back. (The no-op update returns the recorded row even when a concurrent first
# call committed it after this statement began, which DO NOTHING would not.)
ONCE = Sql("""
INSERT INTO {schema}.sandbox_operations AS o (kind, idempotency_key, reference, payment_reference, outcome,
    decline_reason, currency_code, amount_minor, create_time)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
ON CONFLICT (kind, idempotency_key) DO UPDATE SET create_time = o.create_time
RETURNING reference, payment_reference, outcome, decline_reason, currency_code, amount_minor""")


@dataclass(frozen=True)
class _Done:
    reference: str
    outcome: Outcome
    decline_reason: str
    first_time: bool


class SandboxProvider:
    name = NAME

    def __init__(self, db: Database, tenant_id: str, hang_seconds: float = 30.0,
                 outage_file: Path | None = None) -> None:
        self._db = db
        self._tenant_id = tenant_id
        self._hang_seconds = hang_seconds
        self._outage_file = outage_file

    async def _once(self, kind: str, key: str, payment_reference: str, amount: Money, outcome: Outcome,
                    decline_reason: str, prefix: str) -> _Done:
        """Performs the operation the first time ``key`` is seen, else returns what was done then;
        the key used then with other parameters is IdempotencyConflict."""
        reference = payment_reference if kind in _NEW_PAYMENT else f"{prefix}_{secrets.token_hex(12)}"
        async with self._db.session(self._tenant_id) as session:
            row = await session.fetchrow(ONCE, kind, key, reference, payment_reference, outcome.value,
                                         decline_reason, amount.currency_code, amount.amount_minor)
        assert row is not None  # inserted or updated: one row either way
        if row["reference"] == reference:
            return _Done(reference, outcome, decline_reason, True)
        if (row["currency_code"], row["amount_minor"]) != (amount.currency_code, amount.amount_minor) or \
                (kind not in _NEW_PAYMENT and row["payment_reference"] != payment_reference):
            raise IdempotencyConflict(f"{kind} key {key!r} was used with other parameters")
        return _Done(row["reference"], Outcome(row["outcome"]), row["decline_reason"], False)

    async def _new_payment(self, kind: str, idempotency_key: str, amount: Money, token: str) -> Authorization:
        outcome, reason = _BY_TOKEN.get(token, (Outcome.DECLINED, "INVALID_PAYMENT_TOKEN"))
        done = await self._once(kind, idempotency_key, f"sbx_pay_{secrets.token_hex(12)}", amount, outcome, reason,
                                "sbx_pay")
        lost = token == TOKEN_TIMEOUT or (self._outage_file is not None and self._outage_file.exists())
        if done.first_time and lost:
            await asyncio.sleep(self._hang_seconds)  # the answer is lost in the network
        return Authorization(done.outcome, done.reference, done.decline_reason)

    async def charge(self, idempotency_key: str, amount: Money, token: str) -> Authorization:
        return await self._new_payment("charge", idempotency_key, amount, token)

    async def authorize(self, idempotency_key: str, amount: Money, token: str) -> Authorization:
        return await self._new_payment("authorize", idempotency_key, amount, token)

    async def capture(self, idempotency_key: str, reference: str, amount: Money) -> Operation:
        done = await self._once("capture", idempotency_key, reference, amount, Outcome.APPROVED, "", "sbx_cap")
        return Operation(done.reference)

    async def void(self, idempotency_key: str, reference: str) -> Operation:
        done = await self._once("void", idempotency_key, reference, Money("XXX", 0), Outcome.APPROVED, "", "sbx_void")
        return Operation(done.reference)

    async def refund(self, idempotency_key: str, reference: str, amount: Money) -> Operation:
        done = await self._once("refund", idempotency_key, reference, amount, Outcome.APPROVED, "", "sbx_rfd")
        return Operation(done.reference)


class SandboxFactory:
    def __init__(self, db: Database, hang_seconds: float = 30.0, outage_file: Path | None = None) -> None:
        self._db = db
        self._hang_seconds = hang_seconds
        self._outage_file = outage_file

    def __call__(self, tenant_id: str) -> SandboxProvider:
        return SandboxProvider(self._db, tenant_id, hang_seconds=self._hang_seconds, outage_file=self._outage_file)
