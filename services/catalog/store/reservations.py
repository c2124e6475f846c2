"""Reservations and their lines in the tenant schema (SQLAlchemy Core)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.domain.reservation import Line, Reservation, ReservationState, ReserveRequest
from services.catalog.store.tables import reservation_lines, reservations

r, rl = reservations.c, reservation_lines.c


async def insert_held(conn: AsyncConnection, request: ReserveRequest) -> datetime | None:
    """The new reservation's expire_time; None when the id exists already. A concurrent
    insert of the same id waits for the other transaction, then sees its outcome."""
    expire = func.now() + func.make_interval(0, 0, 0, 0, 0, 0, request.ttl_seconds)
    row = (await conn.execute(
        pg_insert(reservations)
        .values(reservation_id=request.reservation_id, state=ReservationState.HELD.value, expire_time=expire,
                create_time=func.now(), update_time=func.now())
        .on_conflict_do_nothing(index_elements=[r.reservation_id])
        .returning(r.expire_time)
    )).first()
    if row is None:
        return None
    await conn.execute(reservation_lines.insert(), [
        {"reservation_id": request.reservation_id, "product_id": line.product_id, "quantity": line.quantity}
        for line in request.lines])
    expire_time: datetime = row.expire_time
    return expire_time


async def get(conn: AsyncConnection, reservation_id: str, *,
              for_update: bool = False) -> tuple[Reservation, datetime] | None:
    """The reservation and the database's clock (to tell whether it has lapsed)."""
    stmt = select(r.state, r.expire_time, func.now().label("now")).where(r.reservation_id == reservation_id)
    row = (await conn.execute(stmt.with_for_update() if for_update else stmt)).first()
    if row is None:
        return None
    lines = (await lines_of(conn, [reservation_id])).get(reservation_id, ())
    return Reservation(reservation_id, lines, ReservationState(row.state), row.expire_time), row.now


async def lines_of(conn: AsyncConnection, reservation_ids: Sequence[str]) -> Mapping[str, tuple[Line, ...]]:
    rows = await conn.execute(
        select(rl.reservation_id, rl.product_id, rl.quantity)
        .where(rl.reservation_id.in_(reservation_ids)).order_by(rl.reservation_id, rl.product_id))
    found: dict[str, list[Line]] = {}
    for row in rows:
        found.setdefault(row.reservation_id, []).append(Line(row.product_id, row.quantity))
    return {key: tuple(lines) for key, lines in found.items()}


async def set_state(conn: AsyncConnection, reservation_ids: Sequence[str], state: ReservationState) -> None:
    await conn.execute(reservations.update().where(r.reservation_id.in_(reservation_ids))
                       .values(state=state.value, update_time=func.now()))


async def lapsed(conn: AsyncConnection, limit: int) -> Sequence[Reservation]:
    """Up to ``limit`` held reservations past their expiry, locked; rows another
    transaction holds (a commit, release, or another replica's sweeper) are skipped."""
    rows = (await conn.execute(
        select(r.reservation_id, r.expire_time)
        .where(r.state == ReservationState.HELD.value, r.expire_time <= func.now())
        .order_by(r.expire_time).limit(limit).with_for_update(skip_locked=True)
    )).all()
    lines = await lines_of(conn, [row.reservation_id for row in rows])
    return [Reservation(row.reservation_id, lines.get(row.reservation_id, ()), ReservationState.HELD,
                        row.expire_time) for row in rows]
