"""Runs an order's saga (see domain/saga.py).

One runner at a time holds an order's saga by its lease (``lease_until``).

**Checkout** (the shopper's path) keeps its state in memory: reserve the stock, charge
the payment (authorize and capture in one call), then one statement writes the outcome
(CONFIRMED, or FAILED when the stock was refused) with its event and gives the lease
back; the catalog commits the reservation when it consumes OrderConfirmed. Nothing is
written between the steps: every remote call is idempotent by the order's id, so a
checkout resumed after a crash (the recovery worker, once the lease ran out) simply
calls again — ReserveStock answers the order's reservation, and the payment already
taken is found with ListPayments (the card token is never stored, so a checkout that
had not charged yet is compensated).

**Compensations, cancellations, returns** persist each step (with the event it implies
and a renewed lease) before the next. A remote call whose outcome is unknown (timeout,
unreachable) is retried with the same idempotency key, ``max_attempts`` times; then
checkout compensates, while COMPENSATE, CANCEL and RETURN (which must finish) are left
to the recovery worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from commerce.catalog.v1 import inventory_pb2
from commerce.order.v1 import order_events_pb2
from commerce.payment.v1 import payment_pb2
from google.protobuf.message import Message

from services.order import events
from services.order.convert import order_pb
from services.order.domain import saga as s
from services.order.domain.order import Order
from services.order.domain.saga import SagaState, Step
from services.order.domain.status import OrderStatus
from services.order.observe import SagaStep, ended
from services.order.peers import Peers, RemoteError
from services.order.store import checkout as checkout_store
from services.order.store import orders as store
from services.runtime.db import Database
from services.runtime.events.outbox import outbox_row
from services.runtime.protos import money_pb

log = structlog.get_logger("commerce.order.saga")
# Called after each persisted step, and at checkout's milestones: RESERVE once the stock is
# held, CAPTURE once the payment is taken (tests use it to stop a saga between steps).
AfterStep = Callable[[str, Step], Awaitable[None]]
State = tuple[Order, SagaState]
T = TypeVar("T")


@dataclass(frozen=True)
class Paid:
    payment_id: str
    failure: str = ""  # the order's failure_reason when nothing (or not all) was taken


Pay = Callable[[], Awaitable[Paid]]
_PAYMENT_STATUS = {number: name.removeprefix("PAYMENT_STATUS_")
                   for name, number in payment_pb2.PaymentStatus.items()}


class Stalled(Exception):
    """A step that must finish could not reach its service; the recovery worker resumes it."""


def _payment_status(payment: payment_pb2.Payment) -> str:
    return _PAYMENT_STATUS.get(payment.status, "UNSPECIFIED")


class SagaRunner:
    def __init__(self, db: Database, peers: Peers, *, lease_seconds: float = 30.0, max_attempts: int = 4,
                 retry_seconds: float = 0.2, reservation_margin_seconds: float = 60.0,
                 after_step: AfterStep | None = None) -> None:
        """``reservation_margin_seconds``: an order is confirmed only while its reservation
        holds for at least this long still (the catalog commits it moments later)."""
        self._db = db
        self._peers = peers
        self.lease_seconds = lease_seconds
        self._max_attempts = max_attempts
        self._retry_seconds = retry_seconds
        self._margin = reservation_margin_seconds
        self._after_step = after_step

    async def checkout(self, tenant_id: str, order: Order, payment_token: str) -> Order | None:
        """Runs the checkout of an order just accepted (PENDING, leased to this process) to its
        end; the order as it ended, or None when a step stalled (the recovery worker resumes it)."""
        try:
            state = await self._checkout(tenant_id, order, self._charge(tenant_id, order, payment_token))
        except Stalled as stall:
            log.warning("saga stalled; the recovery worker resumes it", order_id=order.order_id, error=str(stall))
            return None
        if state is None or state[1].step is not Step.DONE:  # moved meanwhile (a cancellation), or compensating
            await self.run(tenant_id, order.order_id)
            found = await self._load(tenant_id, order.order_id)
            return found[0] if found is not None and found[1].step is Step.DONE else None
        return state[0]

    async def run(self, tenant_id: str, order_id: str, payment_token: str | None = None) -> None:
        """Drives the persisted saga until DONE (or a stall); the caller must hold its lease.
        Each step goes on from the state the previous one persisted; the row is read again
        only when a step found the saga moved by someone else."""
        state = await self._load(tenant_id, order_id)
        while state is not None and state[1].step is not Step.DONE:
            order, saga = state
            try:
                state = await self._step(tenant_id, order, saga, payment_token)
            except Stalled as stall:
                log.warning("saga stalled; the recovery worker resumes it", order_id=order_id, step=saga.step,
                            error=str(stall))
                return
            if self._after_step is not None and saga.step not in s.CHECKOUT_STEPS:  # checkout calls it itself
                await self._after_step(order_id, saga.step)
            if state is None:
                state = await self._load(tenant_id, order_id)

    async def _load(self, tenant_id: str, order_id: str) -> State | None:
        async with self._db.session(tenant_id) as session:
            return await checkout_store.get(session, order_id)

    # --- persistence ----------------------------------------------------------------------

    async def _persist(self, tenant_id: str, order_id: str, expected: Step | frozenset[Step],
                       change: Callable[[Order, SagaState], tuple[Order, SagaState]],
                       refunded_minor: int = 0) -> State | None:
        """Applies ``change`` if the saga is still at ``expected`` (one step, or any of a set), with
        the event of the new status; the state saved (None when the saga was elsewhere)."""
        steps = expected if isinstance(expected, frozenset) else frozenset({expected})
        async with self._db.tenant(tenant_id) as conn:
            found = await store.get(conn, order_id, for_update=True)
            if found is None or found[1].step not in steps:
                return None
            before, saga_before = found
            order, saga = change(before, saga_before)
            done = saga.step is Step.DONE
            order = await store.save(conn, tenant_id, order, saga, None if done else self.lease_seconds)
            if order.status is not before.status:
                await events.status_changed(conn, tenant_id, order, saga.cancelled_by)
            if refunded_minor:
                await events.refunded(conn, tenant_id, order, refunded_minor)
        return order, saga

    async def _to_compensation(self, tenant_id: str, order_id: str, expected: Step | frozenset[Step], reason: str,
                               payment_id: str = "") -> State | None:
        def change(order: Order, saga: SagaState) -> tuple[Order, SagaState]:
            return (replace(order, failure_reason=reason, payment_id=payment_id or order.payment_id),
                    replace(saga, step=Step.COMPENSATE, attempts=0))

        return await self._persist(tenant_id, order_id, expected, change)

    async def _retrying(self, tenant_id: str, order_id: str, step: Step | frozenset[Step],
                        call: Callable[[], Awaitable[T]]) -> T:
        """The call's answer; retried with the same key while its outcome is unknown (each
        attempt recorded, the lease renewed). Raises RemoteError for a refusal, Stalled when
        attempts run out."""
        steps = step if isinstance(step, frozenset) else frozenset({step})
        attempt = 0
        while True:
            try:
                return await call()
            except RemoteError as error:
                if not error.retryable:
                    raise
                attempt += 1
                async with self._db.tenant(tenant_id) as conn:  # record the attempt, keep the lease
                    found = await store.get(conn, order_id, for_update=True)
                    if found is not None and found[1].step in steps:
                        await store.save(conn, tenant_id, found[0], replace(found[1], attempts=found[1].attempts + 1),
                                         self.lease_seconds)
                if attempt >= self._max_attempts:
                    raise Stalled(str(error)) from error
                await asyncio.sleep(self._retry_seconds * 2 ** (attempt - 1))

    # --- steps ----------------------------------------------------------------------------

    async def _step(self, tenant_id: str, order: Order, saga: SagaState, token: str | None) -> State | None:
        """Runs the saga's current step; the state it persisted (None if the saga moved meanwhile)."""
        if saga.cancel_requested and saga.step in s.CHECKOUT_STEPS:
            return await self._to_compensation(tenant_id, order.order_id, saga.step, "")
        if saga.step in s.CHECKOUT_STEPS:
            pay = self._charge(tenant_id, order, token) if token is not None else self._adopt(tenant_id, order)
            return await self._checkout(tenant_id, order, pay)
        with SagaStep(saga.step.name.lower(), order.order_id) as step:
            if saga.step is Step.COMPENSATE:
                state = await self._compensate(tenant_id, order, saga)
            elif saga.step is Step.CANCEL:
                state = await self._cancel_confirmed(tenant_id, order)
            else:
                assert saga.step is Step.RETURN, saga.step
                state = await self._refund_return(tenant_id, order)
            if state is None:
                step.outcome = "moved"
            else:
                step.outcome, step.detail = state[0].status.name.lower(), state[0].failure_reason
                ended(tenant_id, state[0].status.name, state[0].failure_reason)
            return state

    # --- checkout -------------------------------------------------------------------------

    async def _checkout(self, tenant_id: str, order: Order, pay: Pay) -> State | None:
        """Reserve -> pay -> confirm, nothing written in between; the state the outcome left."""
        oid = order.order_id
        steps = s.CHECKOUT_STEPS
        with SagaStep("reserve", oid) as step:
            try:
                reservation = await self._retrying(tenant_id, oid, steps,
                                                   lambda: self._peers.reserve(tenant_id, oid, order.lines))
                step.outcome = "held" if self._holds(reservation) else "lapsed"
            except Stalled:
                step.outcome = "stalled"
                reservation = None
            except RemoteError as refused:  # all or nothing: no stock is held
                step.outcome, step.detail = "refused", refused.reason
                reservation = None
        if reservation is None and step.outcome == "stalled":
            return await self._to_compensation(tenant_id, oid, steps, s.CHECKOUT_UNAVAILABLE)
        if reservation is None:
            reason = step.detail if step.detail in (s.OUT_OF_STOCK, "PRODUCT_NOT_FOUND",
                                                    "PRODUCT_UNAVAILABLE") else s.OUT_OF_STOCK
            return await self._finish(tenant_id, order.moved(OrderStatus.FAILED, failure_reason=reason),
                                      order_events_pb2.OrderFailed)
        if step.outcome == "lapsed":  # a resumed checkout whose reservation lapsed
            return await self._to_compensation(tenant_id, oid, steps, s.RESERVATION_EXPIRED)
        await self._reached(oid, Step.RESERVE)
        payment_id = ""
        if order.totals.total_minor > 0:  # a free order is confirmed with no payment
            paid = await pay()
            if paid.failure:
                return await self._to_compensation(tenant_id, oid, steps, paid.failure, paid.payment_id)
            payment_id = paid.payment_id
            await self._reached(oid, Step.CAPTURE)
        if not self._holds(reservation):  # the payment took too long: give it back
            return await self._to_compensation(tenant_id, oid, steps, s.RESERVATION_EXPIRED, payment_id)
        return await self._finish(tenant_id, replace(order.moved(OrderStatus.CONFIRMED), payment_id=payment_id),
                                  order_events_pb2.OrderConfirmed)

    async def _reached(self, order_id: str, step: Step) -> None:
        """Checkout's in-memory milestones (stock held; payment taken) for the ``after_step`` hook."""
        if self._after_step is not None:
            await self._after_step(order_id, step)

    def _holds(self, reservation: inventory_pb2.Reservation) -> bool:
        """The reservation is held long enough for the catalog to commit it after the confirmation
        (or was committed already: a checkout of an older version resumed after its commit)."""
        if reservation.state == inventory_pb2.RESERVATION_STATE_COMMITTED:
            return True
        if reservation.state != inventory_pb2.RESERVATION_STATE_HELD:
            return False
        expires = reservation.expire_time.ToDatetime(UTC)
        return (expires - now()).total_seconds() > self._margin

    async def _finish(self, tenant_id: str, order: Order, event_type: type[Message]) -> State | None:
        """The checkout's one write: its outcome with the event announcing it."""
        with SagaStep("confirm" if order.status is OrderStatus.CONFIRMED else "fail", order.order_id) as step:
            done = replace(order, update_time=now())
            event = outbox_row(event_type(order=order_pb(done)), tenant_id=tenant_id, aggregate_id=done.order_id)
            async with self._db.session(tenant_id) as session:
                if not await checkout_store.finish(session, tenant_id, done, s.CHECKOUT_STEPS, event):
                    step.outcome = "moved"  # by someone else meanwhile (a cancellation)
                    return None
            step.outcome, step.detail = done.status.name.lower(), done.failure_reason
        ended(tenant_id, done.status.name, done.failure_reason)
        return done, SagaState(Step.DONE)

    def _charge(self, tenant_id: str, order: Order, token: str) -> Pay:
        async def pay() -> Paid:
            with SagaStep("charge", order.order_id) as step:
                paid = await charge()
                step.outcome = "captured" if not paid.failure else "failed"
                step.detail = paid.failure
            return paid

        async def charge() -> Paid:
            oid = order.order_id
            amount = money_pb(order.totals.currency_code, order.totals.total_minor)
            key = s.idempotency_key(oid, "charge")
            try:
                payment = await self._retrying(tenant_id, oid, s.CHECKOUT_STEPS,
                                               lambda: self._peers.charge(tenant_id, oid, amount, token, key))
            except (Stalled, RemoteError):
                return Paid("", s.PAYMENT_FAILED)
            status = _payment_status(payment)
            if status != "CAPTURED":
                return Paid(payment.payment_id, s.decline_reason(status, payment.decline_reason))
            return Paid(payment.payment_id)
        return pay

    def _adopt(self, tenant_id: str, order: Order) -> Pay:
        """A resumed checkout (the card token was never stored): the payment it took, if any."""
        async def pay() -> Paid:
            oid = order.order_id
            try:
                found = await self._retrying(tenant_id, oid, s.CHECKOUT_STEPS,
                                             lambda: self._peers.payments_of(tenant_id, oid))
            except (Stalled, RemoteError):
                return Paid("", s.PAYMENT_FAILED)
            captured = [p for p in found if _payment_status(p) == "CAPTURED"]
            if captured:
                return Paid(captured[0].payment_id)
            held = [p for p in found if _payment_status(p) == "AUTHORIZED"]  # authorized by an older version
            if not held:
                return Paid("", s.PAYMENT_FAILED)
            pid = held[0].payment_id
            try:
                await self._retrying(tenant_id, oid, s.CHECKOUT_STEPS, lambda: self._peers.capture(
                    tenant_id, oid, pid, s.idempotency_key(oid, "capture")))
            except (Stalled, RemoteError):
                return Paid(pid, s.PAYMENT_FAILED)
            return Paid(pid)
        return pay

    async def _undo_payments(self, tenant_id: str, order: Order, purpose: str) -> int:
        """Voids or refunds every payment of the order; the amount refunded."""
        oid = order.order_id
        found = await self._retrying(tenant_id, oid, Step.COMPENSATE, lambda: self._peers.payments_of(tenant_id, oid))
        assert isinstance(found, list)
        refunded = 0
        for payment in found:
            status = _payment_status(payment)
            pid = payment.payment_id
            if status == "AUTHORIZED":
                try:
                    await self._retrying(tenant_id, oid, Step.COMPENSATE, lambda pid=pid: self._peers.void(  # type: ignore[misc]
                        tenant_id, oid, pid, s.idempotency_key(oid, "void")))
                    continue
                except RemoteError as refused:
                    if refused.reason != "PAYMENT_ALREADY_CAPTURED":
                        raise Stalled(str(refused)) from refused
                status = "CAPTURED"
            if status in ("CAPTURED", "PARTIALLY_REFUNDED"):
                refunded += await self._refund(tenant_id, oid, pid, None, purpose, Step.COMPENSATE)
        return refunded

    async def _refund(self, tenant_id: str, oid: str, payment_id: str, amount_minor: int | None, purpose: str,
                      step: Step, currency: str = "") -> int:
        amount = money_pb(currency, amount_minor) if amount_minor is not None else None
        try:
            answer = await self._retrying(tenant_id, oid, step, lambda: self._peers.refund(
                tenant_id, payment_id, amount, purpose, s.idempotency_key(oid, purpose)))
        except RemoteError as refused:
            if refused.reason == "REFUND_EXCEEDS_CAPTURED" and amount_minor is None:
                return 0  # nothing left to refund
            raise Stalled(str(refused)) from refused
        assert isinstance(answer, payment_pb2.RefundPaymentResponse)
        return int(answer.refund.amount.amount_minor)

    async def _release(self, tenant_id: str, order: Order) -> None:
        """Give the order's reserved units back, whatever became of the reservation."""
        oid = order.order_id
        try:
            await self._retrying(tenant_id, oid, Step.COMPENSATE, lambda: self._peers.release(tenant_id, oid))
        except RemoteError as refused:
            if refused.reason == "RESERVATION_NOT_FOUND":  # the reserve never landed: nothing is held
                return
            if refused.reason == "RESERVATION_COMMITTED":  # sold after all (answer lost): back on hand
                for i, line in enumerate(order.lines):
                    await self._restock(tenant_id, oid, line.product_id, line.quantity, f"restock-{i}",
                                        Step.COMPENSATE)
                return
            raise Stalled(str(refused)) from refused

    async def _compensate(self, tenant_id: str, order: Order, saga: SagaState) -> State | None:
        oid = order.order_id
        purpose = "cancel-refund" if saga.cancel_requested else "compensate-refund"
        refunded = await self._undo_payments(tenant_id, order, purpose)
        await self._release(tenant_id, order)
        target = OrderStatus.CANCELLED if saga.cancel_requested else OrderStatus.FAILED
        return await self._persist(tenant_id, oid, Step.COMPENSATE, lambda o, g: (
            o.moved(target, failure_reason="" if g.cancel_requested else (o.failure_reason or s.PAYMENT_FAILED)),
            replace(g, step=Step.DONE, attempts=0)), refunded)

    async def _cancel_confirmed(self, tenant_id: str, order: Order) -> State | None:
        """A CONFIRMED order cancelled: refund everything (a free order has no payment), put the
        sold units back on hand."""
        oid = order.order_id
        refunded = 0
        if order.payment_id:
            refunded = await self._refund(tenant_id, oid, order.payment_id, None, "cancel-refund", Step.CANCEL)
        for i, line in enumerate(order.lines):
            await self._restock(tenant_id, oid, line.product_id, line.quantity, f"restock-{i}", Step.CANCEL)
        return await self._persist(tenant_id, oid, Step.CANCEL, lambda o, g: (
            o.moved(OrderStatus.CANCELLED), replace(g, step=Step.DONE, attempts=0)), refunded)

    async def _restock(self, tenant_id: str, oid: str, product_id: str, units: int, purpose: str,
                       step: Step) -> None:
        try:
            await self._retrying(tenant_id, oid, step, lambda: self._peers.restock(
                tenant_id, product_id, units, s.idempotency_key(oid, purpose)))
        except RemoteError as refused:
            if refused.reason in ("PRODUCT_NOT_FOUND",):  # deleted product: nothing to put back
                return
            raise Stalled(str(refused)) from refused

    async def _refund_return(self, tenant_id: str, order: Order) -> State | None:
        """A received return: its units back on hand, their value refunded: REFUNDED."""
        oid = order.order_id
        info = order.return_info
        assert info is not None
        positions = {line.product_id: i for i, line in enumerate(order.lines)}
        for line in info.lines:
            await self._restock(tenant_id, oid, line.product_id, line.quantity,
                                f"return-{positions[line.product_id]}", Step.RETURN)
        refunded = 0
        if info.refund_amount_minor > 0:
            refunded = await self._refund(tenant_id, oid, order.payment_id, info.refund_amount_minor, "return-refund",
                                          Step.RETURN, order.totals.currency_code)
        return await self._persist(tenant_id, oid, Step.RETURN, lambda o, g: (
            o.moved(OrderStatus.REFUNDED), replace(g, step=Step.DONE, attempts=0)), refunded)


def now() -> datetime:
    return datetime.now(UTC)

