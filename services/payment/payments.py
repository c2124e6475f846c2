"""The payment service's use cases.

ChargePayment (the checkout's one payment call) runs on the hot path
(services/runtime/sql.py): the payment row is its idempotency record. It reads
what the request_id made before (one statement, no transaction): a retry gets that
payment and the provider is not called again. Else it charges through the provider
under the request_id (the provider's idempotency key, so two concurrent twins are
one charge), then one statement inserts the payment and its one event; a twin that
inserted first answers the call instead. Reads are prepared statements too.

The other money-moving writes (authorize, capture, void, refund, webhooks) run in one
SQLAlchemy transaction each, idempotent by request_id (AIP-155): the request_id takes
an advisory lock (concurrent retries queue behind the first), a retry replays the
remembered response, and the same key is passed to the provider, so a retry after a
lost answer never moves money twice. The payment row is locked (FOR UPDATE) while it
changes, so concurrent captures and refunds are serialized and their checks see each
other's effect. Events go to the outbox with the change. ``Reply`` says how a result
becomes the response, so this layer needs no gRPC.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

import structlog
from google.protobuf.message import Message
from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncConnection

from services.payment import events
from services.payment.domain import request_ids, requests
from services.payment.domain.ids import new_payment_id, new_refund_id, payment_not_found
from services.payment.domain.listing import PaymentFilter, encode_token, list_query
from services.payment.domain.payment import Money, Payment, PaymentStatus, Refund
from services.payment.domain.webhook import ProviderEvent
from services.payment.providers.base import (
    Authorization,
    IdempotencyConflict,
    Outcome,
    PaymentProvider,
    ProviderError,
    ProviderFactory,
)
from services.payment.store import charges, provider_events, reads
from services.payment.store import payments as store
from services.runtime.db import Database
from services.runtime.errors import FailedPrecondition, Unavailable
from services.runtime.idempotency import IdempotencyKey, remember, replay

log = structlog.get_logger("commerce.payment")
T = TypeVar("T")
M = TypeVar("M", bound=Message)
PROVIDER_DEADLINE_SECONDS = 5.0
# Per provider, not per tenant: operation x outcome is a handful of series per provider.
PROVIDER_CALLS = Counter("commerce_payment_provider_calls_total",
                         "Calls to a payment provider by operation (charge, authorize, capture, void, refund) and "
                         "outcome (approved, declined, failed for charges and authorizations; ok; timeout, "
                         "unavailable, conflict, error)", ["provider", "operation", "outcome"])


@dataclass(frozen=True)
class Reply(Generic[T, M]):
    type: type[M]
    render: Callable[[T], M]


@dataclass(frozen=True)
class Refunded:
    payment: Payment
    refund: Refund


class Payments:
    def __init__(self, db: Database, providers: Mapping[str, ProviderFactory],
                 provider_deadline_seconds: float = PROVIDER_DEADLINE_SECONDS) -> None:
        self._db = db
        self._providers = providers
        self._deadline = provider_deadline_seconds

    def _provider(self, name: str, tenant_id: str) -> PaymentProvider:
        return self._providers[name](tenant_id)

    async def _call(self, provider: str, operation: str, step: Awaitable[T]) -> T:
        """A provider call under our deadline; no answer is UNAVAILABLE (retry with the same key).
        Counted by provider, operation and outcome (approved, declined, failed, ok, timeout, ...)."""
        outcome = "error"
        try:
            async with asyncio.timeout(self._deadline):
                answer = await step
            found = getattr(answer, "outcome", None)
            outcome = found.value.lower() if isinstance(found, Outcome) else "ok"
            return answer
        except TimeoutError as exc:
            outcome = "timeout"
            raise Unavailable("the payment provider did not answer in time; retry with the same request_id",
                              reason="PROVIDER_TIMEOUT") from exc
        except IdempotencyConflict as exc:
            outcome = "conflict"
            raise FailedPrecondition("request_id was already used for a different request",
                                     reason="REQUEST_ID_REUSED") from exc
        except ProviderError as exc:
            outcome = "unavailable"
            raise Unavailable(f"the payment provider could not be reached ({exc}); retry with the same request_id",
                              reason="PROVIDER_UNAVAILABLE") from exc
        finally:
            PROVIDER_CALLS.labels(provider, operation, outcome).inc()

    # --- reads -----------------------------------------------------------------------

    async def get(self, tenant_id: str, payment_id: str) -> Payment:
        async with self._db.session(tenant_id) as session:
            found = await reads.get(session, payment_id)
        if found is None:
            raise payment_not_found(payment_id)
        return found

    async def list_payments(self, tenant_id: str, wanted: PaymentFilter, page_size: int,
                   page_token: str) -> tuple[Sequence[Payment], str]:
        """A page of payments, newest first, and the token of the next page ("" on the last)."""
        query = list_query(wanted, page_size, page_token)
        async with self._db.session(tenant_id) as session:
            found = await reads.page(session, query)
        page = found[:query.limit]
        more = len(found) > query.limit
        return page, encode_token(page[-1].payment_id, wanted) if more else ""

    # --- money-moving writes ---------------------------------------------------------

    async def authorize(self, tenant_id: str, cmd: requests.Authorize, key: IdempotencyKey,
                        reply: Reply[Payment, M]) -> M:
        fingerprint = request_ids.fingerprint(request_ids.AUTHORIZE, cmd)

        async def work(conn: AsyncConnection) -> Payment:
            existing = await store.by_authorize_request(conn, cmd.request_id)
            if existing is not None:  # a ChargePayment's, or the remembered answer lost: never authorize again
                return existing.answer(cmd.request_id, fingerprint, unknown_is_same=True)
            provider = self._provider(cmd.provider, tenant_id)
            result = await self._call(provider.name, "authorize",
                                      provider.authorize(cmd.request_id, cmd.amount, cmd.payment_token))
            payment = await store.insert(conn, _new_payment(cmd, provider.name, result), cmd.request_id, fingerprint)
            await events.authorized_or_declined(conn, tenant_id, payment)
            return payment

        return await self._write(tenant_id, key, reply, work)

    async def charge(self, tenant_id: str, cmd: requests.Authorize) -> Payment:
        """Authorize and capture in one call: CAPTURED for the whole amount, or DECLINED/FAILED.
        Three statements, no transaction: the look-up, the provider's, the insert."""
        fingerprint = request_ids.fingerprint(request_ids.CHARGE, cmd)
        async with self._db.session(tenant_id) as session:
            before = await charges.by_request(session, cmd.request_id)
        if before is not None:  # a retry (its answer was lost): never charge again
            return before.answer(cmd.request_id, fingerprint)
        provider = self._provider(cmd.provider, tenant_id)
        result = await self._call(provider.name, "charge",
                                  provider.charge(cmd.request_id, cmd.amount, cmd.payment_token))
        payment = _new_payment(cmd, provider.name, result)
        if payment.status is PaymentStatus.AUTHORIZED:
            payment = payment.captured(None)
        async with self._db.session(tenant_id) as session:
            if await charges.insert(session, payment, cmd.request_id, fingerprint,
                                    events.charged(tenant_id, payment)):
                return payment
            twin = await charges.by_request(session, cmd.request_id)  # a concurrent twin inserted first
        if twin is None:
            raise RuntimeError(f"payment of request {cmd.request_id!r} neither inserted nor found")
        return twin.answer(cmd.request_id, fingerprint)

    async def capture(self, tenant_id: str, cmd: requests.Capture, key: IdempotencyKey,
                      reply: Reply[Payment, M]) -> M:
        async def work(conn: AsyncConnection) -> Payment:
            await _no_payment_made_by(conn, cmd.request_id)
            payment = await self._locked(conn, cmd.payment_id)
            payment.check_order(cmd.order_id)
            changed = payment.captured(requests.same_currency(cmd.amount, payment.currency_code))
            provider = self._provider(payment.provider, tenant_id)
            await self._call(provider.name, "capture", provider.capture(cmd.request_id, payment.provider_reference,
                                              Money(payment.currency_code, changed.captured_minor)))
            saved = await store.save(conn, changed)
            await events.captured(conn, tenant_id, saved)
            return saved

        return await self._write(tenant_id, key, reply, work)

    async def void(self, tenant_id: str, cmd: requests.Void, key: IdempotencyKey, reply: Reply[Payment, M]) -> M:
        async def work(conn: AsyncConnection) -> Payment:
            await _no_payment_made_by(conn, cmd.request_id)
            payment = await self._locked(conn, cmd.payment_id)
            payment.check_order(cmd.order_id)
            changed = payment.voided()
            if changed is payment:  # nothing was held: a no-op
                return payment
            provider = self._provider(payment.provider, tenant_id)
            await self._call(provider.name, "void", provider.void(cmd.request_id, payment.provider_reference))
            saved = await store.save(conn, changed)
            await events.voided(conn, tenant_id, saved)
            return saved

        return await self._write(tenant_id, key, reply, work)

    async def refund(self, tenant_id: str, cmd: requests.RefundRequest, key: IdempotencyKey,
                     reply: Reply[Refunded, M]) -> M:
        async def work(conn: AsyncConnection) -> Refunded:
            await _no_payment_made_by(conn, cmd.request_id)
            payment = await self._locked(conn, cmd.payment_id)
            amount = payment.refund_amount(requests.same_currency(cmd.amount, payment.currency_code))
            provider = self._provider(payment.provider, tenant_id)
            done = await self._call(provider.name, "refund", provider.refund(cmd.request_id, payment.provider_reference,
                                                    Money(payment.currency_code, amount)))
            return await _add_refund(conn, tenant_id, payment, amount, cmd.reason, done.reference)

        return await self._write(tenant_id, key, reply, work)

    async def _locked(self, conn: AsyncConnection, payment_id: str) -> Payment:
        found = await store.get(conn, payment_id, for_update=True)
        if found is None:
            raise payment_not_found(payment_id)
        return found

    async def _write(self, tenant_id: str, key: IdempotencyKey, reply: Reply[T, M],
                     work: Callable[[AsyncConnection], Awaitable[T]]) -> M:
        async with self._db.tenant(tenant_id) as conn:
            previous = await replay(conn, key, reply.type)
            if previous is not None:
                return previous
            response = reply.render(await work(conn))
            await remember(conn, key, response)
        return response

    # --- provider webhooks -----------------------------------------------------------

    async def apply_provider_event(self, tenant_id: str, provider: str, event: ProviderEvent) -> bool:
        """Applies a verified webhook event once; True when it had been received before."""
        async with self._db.tenant(tenant_id) as conn:
            if not await provider_events.record(conn, provider, event.event_id, event.type):
                return True
            payment = (await store.by_reference(conn, provider, event.provider_reference)
                       if event.provider_reference else None)
            applied = payment is not None and await _apply(conn, tenant_id, payment, event)
            await provider_events.settle(conn, provider, event.event_id,
                                         provider_events.APPLIED if applied else provider_events.IGNORED,
                                         payment.payment_id if payment else None)
        log.info("provider event", provider=provider, tenant=tenant_id, event_id=event.event_id, type=event.type,
                 applied=applied)
        return False


async def _no_payment_made_by(conn: AsyncConnection, request_id: str) -> None:
    """A request_id is one request: one that made a payment (a ChargePayment keeps no
    idempotency_keys row) is refused to capture, void and refund, as ``replay`` refuses theirs."""
    if await store.made_by_request(conn, request_id):
        raise request_ids.reused(request_id)


def _new_payment(cmd: requests.Authorize, provider: str, result: Authorization) -> Payment:
    status = {Outcome.APPROVED: PaymentStatus.AUTHORIZED, Outcome.DECLINED: PaymentStatus.DECLINED,
              Outcome.FAILED: PaymentStatus.FAILED}[result.outcome]
    now = datetime.now(UTC)  # the stored time (AuthorizePayment stores the database's)
    return Payment(new_payment_id(), cmd.order_id, status, cmd.amount.currency_code, cmd.amount.amount_minor, 0, 0,
                   provider, result.reference, result.decline_reason, now, now)


async def _add_refund(conn: AsyncConnection, tenant_id: str, payment: Payment, amount: int, reason: str,
                      reference: str) -> Refunded:
    refund = await store.insert_refund(conn, payment.payment_id, new_refund_id(), amount, reason, reference)
    saved = await store.save(conn, payment.refunded(refund))
    await events.refunded(conn, tenant_id, saved, refund)
    return Refunded(saved, refund)


async def _apply(conn: AsyncConnection, tenant_id: str, payment: Payment, event: ProviderEvent) -> bool:
    """A provider-side change we did not make ourselves; anything already known or impossible is ignored."""
    if event.type == "payment.captured" and payment.status is PaymentStatus.AUTHORIZED:
        if event.amount_minor is not None and event.amount_minor > payment.amount_minor:
            return False
        saved = await store.save(conn, payment.captured(event.amount_minor))
        await events.captured(conn, tenant_id, saved)
        return True
    if event.type == "payment.voided" and payment.status is PaymentStatus.AUTHORIZED:
        await events.voided(conn, tenant_id, await store.save(conn, payment.voided()))
        return True
    if event.type == "payment.refunded" and event.amount_minor is not None:
        known = any(r.provider_reference == event.refund_reference for r in payment.refunds)
        if known or payment.status not in {PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED} \
                or event.amount_minor > payment.refundable_minor:
            return False
        await _add_refund(conn, tenant_id, payment, event.amount_minor, "refunded at the provider",
                          event.refund_reference)
        return True
    return False
