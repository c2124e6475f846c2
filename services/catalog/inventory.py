"""Inventory use cases: reserve, commit, release and expire stock reservations,
each in one tenant transaction together with its outbox events.

Stock rows are always locked in product_id order (request lines are sorted), so
concurrent reservations of overlapping products queue instead of deadlocking.
A reservation's id is the caller's (the order id): reserving it again returns
it as it is now, which makes every call safe to retry.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog import events
from services.catalog.domain import reservation as rules
from services.catalog.domain.product import ProductStatus
from services.catalog.domain.reservation import Reservation, ReservationState, ReserveRequest
from services.catalog.store import products as product_store
from services.catalog.store import reservations as store
from services.catalog.store import stock as stock_store
from services.runtime.db import Database
from services.runtime.errors import Aborted, DomainError

SWEEP_BATCH = 100


class Inventory:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def reserve(self, tenant_id: str, request: ReserveRequest) -> Reservation:
        """Every line or none; FAILED_PRECONDITION OUT_OF_STOCK / PRODUCT_UNAVAILABLE otherwise."""
        async with self._db.tenant(tenant_id) as conn:
            expire_time = await store.insert_held(conn, request)
            if expire_time is None:
                return await self._existing(conn, request)
            reservation = Reservation(request.reservation_id, request.lines, ReservationState.HELD, expire_time)
            info = await product_store.sale_info(conn, [line.product_id for line in request.lines])
            for line in request.lines:
                status, _ = info.get(line.product_id, (None, ""))
                if status is not ProductStatus.ACTIVE:
                    raise rules.product_unavailable(line.product_id, status.value if status else None)
            for line in request.lines:
                level = await stock_store.reserve(conn, line.product_id, line.quantity)
                if level is None:
                    current = await stock_store.get(conn, line.product_id)
                    raise rules.out_of_stock(line.product_id, line.quantity, current.available if current else 0)
                if rules.crossed_low_stock(level.available + line.quantity, level.available):
                    await events.low_stock(conn, tenant_id, line.product_id, info[line.product_id][1],
                                           level.available)
            await events.stock_reserved(conn, tenant_id, reservation)
        return reservation

    async def _existing(self, conn: AsyncConnection, request: ReserveRequest) -> Reservation:
        found = await store.get(conn, request.reservation_id)
        if found is None:  # only if it was deleted in between, which nothing does
            raise Aborted("reservation changed concurrently; retry",
                          metadata={"reservation_id": request.reservation_id})
        existing, _ = found
        if not request.same_lines(existing.lines):
            raise rules.id_reused(request.reservation_id)
        return existing

    async def commit(self, tenant_id: str, reservation_id: str) -> Reservation:
        """HELD -> COMMITTED; committing again returns it. Released, expired, or held
        past its expiry (then expired here) -> FAILED_PRECONDITION RESERVATION_EXPIRED."""
        refusal: DomainError
        async with self._db.tenant(tenant_id) as conn:
            current, now = await self._locked(conn, reservation_id)
            if current.state is ReservationState.COMMITTED:
                return current
            refusal = rules.not_committable(current)
            if current.is_lapsed(now):
                await self._give_back(conn, tenant_id, [current], ReservationState.EXPIRED)
            elif current.state is ReservationState.HELD:
                for line in current.lines:
                    await stock_store.sell(conn, line.product_id, line.quantity)
                committed = replace(current, state=ReservationState.COMMITTED)
                await store.set_state(conn, [reservation_id], committed.state)
                await events.stock_committed(conn, tenant_id, committed)
                return committed
        raise refusal  # after the transaction: a lapsed reservation stays expired

    async def release(self, tenant_id: str, reservation_id: str) -> Reservation:
        """HELD -> RELEASED; a released or expired one is returned unchanged; a
        committed one -> FAILED_PRECONDITION RESERVATION_COMMITTED."""
        async with self._db.tenant(tenant_id) as conn:
            current, _ = await self._locked(conn, reservation_id)
            if current.state is ReservationState.COMMITTED:
                raise rules.already_committed(reservation_id)
            if current.state is not ReservationState.HELD:
                return current
            return (await self._give_back(conn, tenant_id, [current], ReservationState.RELEASED))[0]

    async def sweep(self, tenant_id: str, limit: int = SWEEP_BATCH) -> int:
        """Expires up to ``limit`` held reservations past their expiry; how many it expired."""
        async with self._db.tenant(tenant_id) as conn:
            lapsed = await store.lapsed(conn, limit)
            if lapsed:
                await self._give_back(conn, tenant_id, lapsed, ReservationState.EXPIRED)
        return len(lapsed)

    async def _locked(self, conn: AsyncConnection, reservation_id: str) -> tuple[Reservation, datetime]:
        found = await store.get(conn, reservation_id, for_update=True)
        if found is None:
            raise rules.reservation_not_found(reservation_id)
        return found

    async def _give_back(self, conn: AsyncConnection, tenant_id: str, held: Sequence[Reservation],
                         state: ReservationState) -> list[Reservation]:
        """Held units of ``held`` return to available stock (product_id order); they take ``state``."""
        units: Counter[str] = Counter()
        for reservation in held:
            for line in reservation.lines:
                units[line.product_id] += line.quantity
        for product_id in sorted(units):
            await stock_store.unreserve(conn, product_id, units[product_id])
        await store.set_state(conn, [r.reservation_id for r in held], state)
        changed = [replace(r, state=state) for r in held]
        for reservation in changed:
            await events.stock_released(conn, tenant_id, reservation)
        return changed
