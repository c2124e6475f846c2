"""Inventory use cases: reserve, commit, release and expire stock reservations, and
sell a confirmed order's units; each in one tenant transaction together with its
outbox events, on the hot path (asyncpg, statements prepared once).

A reservation's id is the caller's (the order id): reserving it again returns it as
it is now, which makes every call safe to retry. Stock rows are locked in product_id
order by every statement (store/reservations.py), so overlapping reservations queue
instead of deadlocking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import asyncpg  # type: ignore[import-untyped]
from prometheus_client import Counter
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random

from services.catalog import events
from services.catalog.domain import reservation as rules
from services.catalog.domain.reservation import Line, Reservation, ReservationState, ReserveRequest
from services.catalog.store import reservations as store
from services.runtime.db import Database
from services.runtime.errors import Aborted, DomainError
from services.runtime.sql import Session

SWEEP_BATCH = 100
# Held reservations that lapsed (a checkout that stalled past the hold): by the sweeper, or met
# lapsed by a commit. No tenant label: one series for the mesh.
EXPIRED = Counter("commerce_reservations_expired_total", "Stock reservations that expired (their units back on sale)")
# A refused reservation whose cause is gone when looked for (units given back meanwhile)
# is tried again, this many times in all.
RESERVE_ATTEMPTS = 3


class _NotAllHeld(Exception):
    """Some line could not be held: roll the reservation back."""


class Inventory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, tenant_id: str, request: ReserveRequest) -> Reservation:
        """Every line or none; FAILED_PRECONDITION OUT_OF_STOCK / PRODUCT_UNAVAILABLE otherwise.
        Held: BEGIN, one statement, COMMIT (and a LowStock row when a line crosses the threshold)."""
        for _ in range(RESERVE_ATTEMPTS):
            try:
                return await self._try_reserve(tenant_id, request)
            except _NotAllHeld:
                pass
            async with self._db.session(tenant_id) as session:
                refusal = rules.refusal(await store.on_sale(session, request.lines))
            if refusal is not None:
                raise refusal
        raise Aborted("stock changed while reserving; retry",
                      metadata={"reservation_id": request.reservation_id})

    async def _try_reserve(self, tenant_id: str, request: ReserveRequest) -> Reservation:
        async with self._db.transaction(tenant_id) as session:
            outcome = await store.reserve(session, request)
            if outcome is None:
                return await _existing(session, request)
            expire_time, held = outcome
            if len(held) != len(request.lines):
                raise _NotAllHeld
            await events.write(session, events.low_stock_rows(tenant_id, rules.newly_low(held)))
            return Reservation(request.reservation_id, request.lines, ReservationState.HELD, expire_time)

    async def commit(self, tenant_id: str, reservation_id: str) -> Reservation:
        """HELD -> COMMITTED; committing again returns it. Released, expired, or held
        past its expiry (then expired here) -> FAILED_PRECONDITION RESERVATION_EXPIRED."""
        async with self._db.transaction(tenant_id) as session:
            found = await store.commit(session, reservation_id, even_lapsed=False)
            if found is None:
                raise rules.reservation_not_found(reservation_id)
            current = found.reservation
            if found.committed:
                return replace(current, state=ReservationState.COMMITTED)
            if current.state is ReservationState.COMMITTED:
                return current
            refusal: DomainError = rules.not_committable(current)
            expired = current.is_lapsed(found.now)
            if expired:
                await _give_back(session, tenant_id, reservation_id, ReservationState.EXPIRED)
        if expired:
            EXPIRED.inc()
        raise refusal  # after the transaction: a lapsed reservation stays expired

    async def release(self, tenant_id: str, reservation_id: str) -> Reservation:
        """HELD -> RELEASED; a released or expired one is returned unchanged; a
        committed one -> FAILED_PRECONDITION RESERVATION_COMMITTED."""
        async with self._db.transaction(tenant_id) as session:
            released = await _give_back(session, tenant_id, reservation_id, ReservationState.RELEASED)
            if released is not None:
                return released
            found = await store.get(session, reservation_id)
        if found is None:
            raise rules.reservation_not_found(reservation_id)
        current = found.reservation
        if current.state is ReservationState.COMMITTED:
            raise rules.already_committed(reservation_id)
        if current.state is ReservationState.HELD:  # made between the two statements
            raise Aborted("reservation changed concurrently; retry", metadata={"reservation_id": reservation_id})
        return current

    async def sweep(self, tenant_id: str, limit: int = SWEEP_BATCH) -> int:
        """Expires up to ``limit`` held reservations past their expiry; how many it expired.

        The sweep locks lapsed reservations, then their stock rows; the consumer of confirmed
        orders, committing several reservations in one transaction, locks stock rows, then the
        next reservation: PostgreSQL may end one of the two as a deadlock. The consumer then
        applies its events one by one; the sweep tries again at once (tenacity, 3 times)."""
        async with self._db.session(tenant_id) as session:
            if not await store.any_lapsed(session):
                return 0
        async for attempt in AsyncRetrying(retry=retry_if_exception_type(asyncpg.DeadlockDetectedError),
                                           stop=stop_after_attempt(3), wait=wait_random(0.01, 0.1), reraise=True):
            with attempt:
                async with self._db.transaction(tenant_id) as session:
                    expired = await store.expire_lapsed(session, limit)
                    await events.write(session, [events.stock_released_row(tenant_id, r) for r in expired])
        EXPIRED.inc(len(expired))
        return len(expired)


async def sell_confirmed(session: Session, tenant_id: str, reservation_id: str, lines: Sequence[Line]) -> None:
    """The units of a confirmed order leave the shelf, in ``session``'s transaction: its HELD
    reservation (even lapsed) is committed (one statement); a committed one stays as it
    is; if it was released or expired, or never made, the units (the reservation's lines,
    else ``lines``) are taken again if every line has them available, and it is COMMITTED;
    else nothing is taken and a StockShortfall is written (the order service cancels and
    refunds the order)."""
    found = await store.commit(session, reservation_id, even_lapsed=True)
    if found is not None and (found.committed or found.reservation.state is ReservationState.COMMITTED):
        return
    wanted = found.reservation.lines if found is not None else tuple(lines)
    retaken = await store.retake(session, reservation_id, wanted)
    if retaken.short is not None:
        product_id, available = retaken.short
        await events.write(session, [events.stock_shortfall_row(tenant_id, reservation_id, wanted, product_id,
                                                                available)])
    elif not retaken.committed:  # a HELD reservation of this id appeared meanwhile: apply the event again
        raise Aborted("reservation changed concurrently; retry", metadata={"reservation_id": reservation_id})
    else:
        await events.write(session, events.low_stock_rows(tenant_id, rules.newly_low(retaken.taken)))


async def _existing(session: Session, request: ReserveRequest) -> Reservation:
    found = await store.get(session, request.reservation_id)
    if found is None:  # only if it was deleted in between, which nothing does
        raise Aborted("reservation changed concurrently; retry", metadata={"reservation_id": request.reservation_id})
    if not request.same_lines(found.reservation.lines):
        raise rules.id_reused(request.reservation_id)
    return found.reservation


async def _give_back(session: Session, tenant_id: str, reservation_id: str,
                     state: ReservationState) -> Reservation | None:
    """HELD -> ``state`` (RELEASED or EXPIRED), its units back, with its StockReleased event;
    None if it was not HELD."""
    changed = await store.give_back(session, reservation_id, state)
    if changed is not None:
        await events.write(session, [events.stock_released_row(tenant_id, changed)])
    return changed
