"""The order service's use cases. Checkout creates the order (idempotent by the
customer's request_id) and runs its saga in a task that a disconnecting client
cannot cancel; lifecycle changes are guarded by the status machine, and those
that move money or stock hand a saga step to the same runner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from commerce.cart.v1 import cart_pb2
from google.protobuf.empty_pb2 import Empty

from services.order import events
from services.order.domain import listing, validation
from services.order.domain.ids import new_order_id, order_not_found
from services.order.domain.order import Order, OrderLine, ReturnInfo, ReturnLine, Shipment, returned_value
from services.order.domain.saga import CHECKOUT_STEPS, SagaState, Step
from services.order.domain.status import CANCELLABLE, OrderStatus, check_move, invalid_status
from services.order.domain.totals import WEIGHT, Rules, totals
from services.order.peers import Peers
from services.order.saga import SagaRunner
from services.order.store import checkout as checkout_store
from services.order.store import orders as store
from services.order.watch import ChangeFeed
from services.runtime.context import Caller
from services.runtime.db import Database
from services.runtime.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from services.runtime.idempotency import IdempotencyKey, remember, replay

# Longest a call waits for a saga before answering the order as it is (below the edge's 15 s).
SETTLE_SECONDS = 10.0
# How long a tenant's shipping and tax rules are reused before they are read again.
RULES_SECONDS = 5.0
# A call waiting for a saga run elsewhere (a retry, another replica) re-reads the order when the
# change feed says it changed, and at least this often (as often as _POLL_SECONDS while the
# feed is down or absent).
_RECHECK_SECONDS = 1.0
_POLL_SECONDS = 0.05
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


def _deadline() -> float:
    """When a call stops waiting for its saga: SETTLE_SECONDS from now, for the whole call."""
    return asyncio.get_running_loop().time() + SETTLE_SECONDS


def _outcome(order: Order) -> Order:
    """PlaceOrder's answer: the order, or FAILED_PRECONDITION naming why its checkout failed."""
    if order.status is OrderStatus.FAILED:
        raise FailedPrecondition(f"checkout failed ({order.failure_reason}); order {order.order_id} is FAILED and "
                                 "any payment taken was given back", reason=order.failure_reason,
                                 metadata={"order_id": order.order_id})
    return order


def can_see(caller: Caller, order: Order) -> bool:
    return caller.is_staff or "service" in caller.roles or order.customer_id == caller.subject


def _lines(cart: cart_pb2.Cart) -> tuple[OrderLine, ...]:
    return tuple(OrderLine(line.product_id, line.sku, line.title, line.quantity, line.unit_price.amount_minor)
                 for line in cart.lines)


class Orders:
    def __init__(self, db: Database, peers: Peers, runner: SagaRunner, feed: ChangeFeed | None = None) -> None:
        self._db = db
        self._peers = peers
        self._runner = runner
        self._feed = feed
        self._tasks: set[asyncio.Task[Any]] = set()
        self._rules_cache: dict[str, tuple[float, Rules]] = {}

    async def close(self) -> None:
        """Lets running sagas finish their current step (the recovery worker resumes the rest)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, tenant_id: str, order_id: str, token: str | None = None) -> asyncio.Task[None]:
        return self._keep(asyncio.create_task(self._runner.run(tenant_id, order_id, token), name=f"saga-{order_id}"))

    def _keep(self, task: asyncio.Task[T]) -> asyncio.Task[T]:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- checkout -------------------------------------------------------------------------

    async def place(self, caller: Caller, tenant_id: str, checkout: validation.Checkout) -> Order:
        deadline = _deadline()
        cart = await self._peers.cart(caller.token)
        order = await self._new_order(caller, tenant_id, checkout, cart) if cart.lines else None
        if order is not None:
            async with self._db.session(tenant_id) as session:
                accepted = await checkout_store.accept(session, order, self._runner.lease_seconds)
            if accepted:
                task = self._keep(asyncio.create_task(
                    self._runner.checkout(tenant_id, order, checkout.payment_token), name=f"checkout-{order.order_id}"))
                ended = await self._follow(task, deadline) and task.result()
                return _outcome(ended or await self.get(caller, tenant_id, order.order_id))
        # The request was placed before (a retry, maybe once the cart was emptied by its order).
        async with self._db.session(tenant_id) as session:
            order_id = await checkout_store.order_of_request(session, caller.subject, checkout.request_id)
        if order_id is None:
            raise FailedPrecondition("the cart is empty", reason="CART_EMPTY")
        return _outcome(await self._settled(tenant_id, order_id, deadline))

    async def _new_order(self, caller: Caller, tenant_id: str, checkout: validation.Checkout,
                         cart: cart_pb2.Cart) -> Order:
        lines = _lines(cart)
        rules = await self._rules(tenant_id)
        grams = {line.product_id: line.unit_weight_grams for line in cart.lines} \
            if rules.shipping.mode == WEIGHT else {}
        a = checkout.address
        now = _now()
        return Order(order_id=new_order_id(), request_id=checkout.request_id, customer_id=caller.subject,
                     email=checkout.email, status=OrderStatus.PENDING, lines=lines, address=a,
                     totals=totals(cart.currency_code, lines, grams, rules, a.country_code, a.region),
                     create_time=now, update_time=now)

    async def _rules(self, tenant_id: str) -> Rules:
        """The tenant's shipping and tax rules, read at most every RULES_SECONDS."""
        loop_now = asyncio.get_running_loop().time()
        cached = self._rules_cache.get(tenant_id)
        if cached is not None and loop_now - cached[0] < RULES_SECONDS:
            return cached[1]
        async with self._db.session(tenant_id) as session:
            rules = await checkout_store.rules(session)
        self._rules_cache[tenant_id] = (loop_now, rules)
        return rules

    async def _settled(self, tenant_id: str, order_id: str, deadline: float,
                       runner: asyncio.Task[None] | None = None) -> Order:
        """The order once its saga is done (or as it is at ``deadline``, event-loop time). With
        the ``runner`` this call started, as soon as it ends: a runner that stalled leaves the
        rest to the recovery worker, nothing else moves the order meanwhile. Otherwise (a saga
        run elsewhere) re-read when the change feed reports a write to the order."""
        loop = asyncio.get_running_loop()
        if runner is not None and await self._follow(runner, deadline):
            deadline = loop.time()
        async with self._changes(tenant_id, order_id) as changed:
            while True:
                changed.clear()
                async with self._db.session(tenant_id) as session:
                    found = await checkout_store.get(session, order_id)
                if found is None:
                    raise order_not_found(order_id)
                order, saga = found
                left = deadline - loop.time()
                if saga.step is Step.DONE or left <= 0:
                    return order
                online = self._feed is not None and self._feed.online
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(left, _RECHECK_SECONDS if online else _POLL_SECONDS))

    def _changes(self, tenant_id: str, order_id: str) -> AbstractAsyncContextManager[asyncio.Event]:
        """An event set when the order may have changed (never set without a feed)."""
        if self._feed is None:
            return contextlib.nullcontext(asyncio.Event())
        return self._feed.subscribe(tenant_id, order_id)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, caller: Caller, tenant_id: str, order_id: str) -> Order:
        async with self._db.session(tenant_id) as session:
            found = await checkout_store.get(session, order_id)
        if found is None or not can_see(caller, found[0]):
            raise order_not_found(order_id)
        return found[0]

    async def list_orders(self, caller: Caller, tenant_id: str, size: int, token: str, status: str,
                   customer_id: str) -> tuple[list[Order], str]:
        if not caller.is_staff:
            if customer_id and customer_id != caller.subject:
                raise PermissionDenied("customers see only their own orders", reason="NOT_YOUR_ORDERS")
            customer_id = caller.subject
        if len(customer_id) > 128 or any(ord(c) < 32 for c in customer_id):  # NUL: PostgreSQL refuses it
            raise InvalidArgument.field("customer_id", "must be a user id: at most 128 printable characters")
        wanted: OrderStatus | None = None
        if status != "UNSPECIFIED":
            try:
                wanted = OrderStatus(status)
            except ValueError as exc:
                raise InvalidArgument.field("status", "is not an order status") from exc
        limit = listing.page_size(size)
        made_for = listing.fingerprint(customer_id, status)
        before = listing.decode_token(token, made_for)
        async with self._db.tenant_read(tenant_id) as conn:
            found = await store.list_page(conn, customer_id or None, wanted, before, limit + 1)
        page = found[:limit]
        more = len(found) > limit
        return page, listing.encode_token(page[-1].order_id, made_for) if more else ""

    # --- lifecycle ------------------------------------------------------------------------

    async def _change(self, caller: Caller, tenant_id: str, order_id: str,
                      change: Callable[[Order, SagaState], tuple[Order, SagaState]], key: IdempotencyKey | None,
                      *, own_only: bool = False) -> tuple[Order, SagaState] | None:
        """Applies ``change`` to the locked order with the event of its new status; None when
        ``key`` was used before (the change was made then). A saga step it starts is leased
        to this process; a checkout still running keeps its runner's lease."""
        async with self._db.tenant(tenant_id) as conn:
            found = await store.get(conn, order_id, for_update=True)
            if found is None or not can_see(caller, found[0]) or (own_only and found[0].customer_id != caller.subject):
                raise order_not_found(order_id)
            if await replay(conn, key, Empty) is not None:
                return None
            before, saga_before = found
            order, saga = change(before, saga_before)
            running = saga_before.step is not Step.DONE
            lease = self._runner.lease_seconds if saga.step is not Step.DONE else None
            order = await store.save(conn, tenant_id, order, saga, lease, keep_lease=running)
            if order.status is not before.status:
                await events.status_changed(conn, tenant_id, order, saga.cancelled_by)
            await remember(conn, key, Empty())
        return order, saga

    async def cancel(self, caller: Caller, tenant_id: str, order_id: str, reason: str,
                     key: IdempotencyKey | None) -> Order:
        deadline = _deadline()

        def change(order: Order, saga: SagaState) -> tuple[Order, SagaState]:
            if order.status not in CANCELLABLE:
                raise invalid_status(order.status, OrderStatus.CANCELLED.value)
            if saga.step is not Step.DONE and saga.step not in CHECKOUT_STEPS:
                raise FailedPrecondition("the order is already being cancelled", reason="INVALID_ORDER_STATUS",
                                         metadata={"status": order.status.value})
            cancelled = replace(order, cancel_reason=reason)
            if saga.step is Step.DONE:  # CONFIRMED: refund and restock
                return cancelled, SagaState(Step.CANCEL, 0, True, caller.subject)
            return cancelled, replace(saga, cancel_requested=True, cancelled_by=caller.subject)

        changed = await self._change(caller, tenant_id, order_id, change, key)
        runner = None
        if changed is not None:
            runner = await self._drive(tenant_id, order_id, leased=changed[1].step is Step.CANCEL)
        return await self._settled(tenant_id, order_id, deadline, runner)

    async def _drive(self, tenant_id: str, order_id: str, *, leased: bool) -> asyncio.Task[None] | None:
        """Runs the order's saga here: at once when this process holds its lease, else when
        its runner is gone (lease run out), e.g. a checkout cancelled after a crash."""
        if not leased:
            async with self._db.tenant(tenant_id) as conn:
                leased = await store.take_lease(conn, order_id, self._runner.lease_seconds)
        return self._spawn(tenant_id, order_id) if leased else None

    @staticmethod
    async def _follow(task: asyncio.Task[Any], deadline: float) -> bool:
        """Waits (until ``deadline`` at most) for a saga task without ever cancelling it: a client
        that goes away does not stop a saga half-way. Whether it ended; a runner that died raises here."""
        await asyncio.wait({task}, timeout=max(deadline - asyncio.get_running_loop().time(), 0.0))
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
        return task.done()

    async def ship(self, caller: Caller, tenant_id: str, order_id: str, carrier: str, tracking: str,
                   key: IdempotencyKey | None) -> Order:
        def change(order: Order, saga: SagaState) -> tuple[Order, SagaState]:
            if saga.step is not Step.DONE:
                raise invalid_status(order.status, OrderStatus.SHIPPED.value)
            return order.moved(OrderStatus.SHIPPED, shipment=Shipment(carrier, tracking, _now())), saga

        return await self._changed(caller, tenant_id, order_id, change, key)

    async def _changed(self, caller: Caller, tenant_id: str, order_id: str,
                       change: Callable[[Order, SagaState], tuple[Order, SagaState]], key: IdempotencyKey | None,
                       *, own_only: bool = False) -> Order:
        changed = await self._change(caller, tenant_id, order_id, change, key, own_only=own_only)
        return changed[0] if changed is not None else await self.get(caller, tenant_id, order_id)

    async def deliver(self, caller: Caller, tenant_id: str, order_id: str, key: IdempotencyKey | None) -> Order:
        def change(order: Order, saga: SagaState) -> tuple[Order, SagaState]:
            check_move(order.status, OrderStatus.DELIVERED)
            assert order.shipment is not None
            return order.moved(OrderStatus.DELIVERED, shipment=replace(order.shipment, deliver_time=_now())), saga

        return await self._changed(caller, tenant_id, order_id, change, key)

    async def request_return(self, caller: Caller, tenant_id: str, order_id: str, reason: str,
                             lines: list[ReturnLine], request_id: str, key: IdempotencyKey | None) -> Order:
        def change(order: Order, saga: SagaState) -> tuple[Order, SagaState]:
            returned = validation.return_request(reason, lines, order.lines, request_id)
            check_move(order.status, OrderStatus.RETURN_REQUESTED)
            info = ReturnInfo(reason, returned, returned_value(order.lines, returned), _now())
            return order.moved(OrderStatus.RETURN_REQUESTED, return_info=info), saga

        return await self._changed(caller, tenant_id, order_id, change, key, own_only=True)

    async def receive_return(self, caller: Caller, tenant_id: str, order_id: str,
                             key: IdempotencyKey | None) -> Order:
        deadline = _deadline()

        def change(order: Order, saga: SagaState) -> tuple[Order, SagaState]:
            check_move(order.status, OrderStatus.RETURNED)
            assert order.return_info is not None
            info = replace(order.return_info, receive_time=_now())
            return order.moved(OrderStatus.RETURNED, return_info=info), SagaState(Step.RETURN)

        runner = None
        if await self._change(caller, tenant_id, order_id, change, key) is not None:
            runner = await self._drive(tenant_id, order_id, leased=True)
        return await self._settled(tenant_id, order_id, deadline, runner)
