"""Reservations, their lines and the stock they hold, in the tenant schema: asyncpg
statements prepared once (services/runtime/sql.py), each change one statement.

Lock order, everywhere: a reservation row first (only while holding no stock row),
then stock rows in product_id order (a ``locked`` CTE ordered by product_id, ``FOR
UPDATE``, that the change joins), so overlapping reservations, commits, releases and
sweeps queue and never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg  # type: ignore[import-untyped]

from services.catalog.domain.reservation import (
    Line,
    OnSale,
    Reservation,
    ReservationState,
    ReserveRequest,
    Taken,
)
from services.runtime.sql import Session, Sql

# Claim the id, insert the lines, hold every line whose product is ACTIVE and has the units.
# Nothing happens beyond the claim when the id exists. The caller rolls back unless every
# line was held. ``held`` returns what is left of each held product (low-stock crossings).
RESERVE = Sql("""
WITH wanted AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS w(product_id, quantity)),
claim AS (
    INSERT INTO {schema}.reservations (reservation_id, state, expire_time, create_time, update_time)
    VALUES ($1, 'HELD', now() + make_interval(secs => $4), now(), now())
    ON CONFLICT (reservation_id) DO NOTHING
    RETURNING expire_time),
lines AS (
    INSERT INTO {schema}.reservation_lines (reservation_id, product_id, quantity)
    SELECT $1, product_id, quantity FROM wanted WHERE EXISTS (SELECT FROM claim)),
locked AS MATERIALIZED (
    SELECT product_id FROM {schema}.stock WHERE product_id = ANY($2::text[]) AND EXISTS (SELECT FROM claim)
    ORDER BY product_id FOR UPDATE),
held AS (
    UPDATE {schema}.stock s SET reserved = s.reserved + w.quantity, update_time = now()
    FROM locked l JOIN wanted w ON w.product_id = l.product_id
    JOIN {schema}.products p ON p.product_id = l.product_id AND p.status = 'ACTIVE'
    WHERE s.product_id = l.product_id AND s.on_hand - s.reserved >= w.quantity
    RETURNING s.product_id, p.sku, w.quantity, s.on_hand - s.reserved AS available)
SELECT (SELECT expire_time FROM claim) AS expire_time,
       ARRAY(SELECT product_id FROM held ORDER BY product_id) AS product_ids,
       ARRAY(SELECT sku FROM held ORDER BY product_id) AS skus,
       ARRAY(SELECT quantity FROM held ORDER BY product_id) AS quantities,
       ARRAY(SELECT available FROM held ORDER BY product_id) AS available
""")

# Why a reservation could not be held: each line's product status and available units.
ON_SALE = Sql("""
SELECT w.product_id, w.quantity, p.status, coalesce(s.on_hand - s.reserved, 0) AS available
FROM unnest($1::text[], $2::bigint[]) AS w(product_id, quantity)
LEFT JOIN {schema}.products p ON p.product_id = w.product_id
LEFT JOIN {schema}.stock s ON s.product_id = w.product_id
ORDER BY w.product_id COLLATE "C"
""")

_LINES_OF = """
       ARRAY(SELECT product_id FROM {schema}.reservation_lines l
             WHERE l.reservation_id = r.reservation_id ORDER BY product_id) AS product_ids,
       ARRAY(SELECT quantity FROM {schema}.reservation_lines l
             WHERE l.reservation_id = r.reservation_id ORDER BY product_id) AS quantities"""

GET = Sql(f"SELECT r.state, r.expire_time, now() AS now, {_LINES_OF} "
          "FROM {schema}.reservations r WHERE r.reservation_id = $1")

# Lock the reservation; if HELD (and unexpired, or $2: even lapsed), its units leave the
# shelf (on_hand and reserved drop) and it is COMMITTED. Returns it as it was found.
COMMIT = Sql(f"""
WITH r AS MATERIALIZED (
    SELECT reservation_id, state, expire_time FROM {{schema}}.reservations WHERE reservation_id = $1 FOR UPDATE),
sold_lines AS MATERIALIZED (
    SELECT l.product_id, l.quantity FROM {{schema}}.reservation_lines l JOIN r ON r.reservation_id = l.reservation_id
    WHERE r.state = 'HELD' AND ($2 OR r.expire_time > now())),
locked AS MATERIALIZED (
    SELECT product_id FROM {{schema}}.stock WHERE product_id = ANY(ARRAY(SELECT product_id FROM sold_lines))
    ORDER BY product_id FOR UPDATE),
sold AS (
    UPDATE {{schema}}.stock s
    SET on_hand = s.on_hand - l.quantity, reserved = s.reserved - l.quantity, update_time = now()
    FROM sold_lines l JOIN locked k ON k.product_id = l.product_id
    WHERE s.product_id = l.product_id
    RETURNING s.product_id),
committed AS (
    UPDATE {{schema}}.reservations t SET state = 'COMMITTED', update_time = now()
    FROM r WHERE t.reservation_id = r.reservation_id AND EXISTS (SELECT FROM sold_lines)
    RETURNING t.reservation_id)
SELECT r.state, r.expire_time, now() AS now, (SELECT count(*) FROM sold) AS sold,
       EXISTS (SELECT FROM committed) AS committed, {_LINES_OF}
FROM r
""")

# Take the units of a sale whose reservation is gone (released, expired, or never made),
# all or nothing: only if every line's product has them available. Then the reservation is
# COMMITTED (created with the lines if it did not exist). ``short``: the first line that
# has not (nothing was taken); ``committed`` false with nothing short: a HELD or COMMITTED
# reservation of that id appeared meanwhile (nothing may stay written: roll back).
RETAKE = Sql("""
WITH wanted AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS w(product_id, quantity)),
locked AS MATERIALIZED (
    SELECT product_id, on_hand - reserved AS available FROM {schema}.stock
    WHERE product_id = ANY($2::text[]) ORDER BY product_id FOR UPDATE),
short AS MATERIALIZED (
    SELECT w.product_id, coalesce(l.available, 0) AS available
    FROM wanted w LEFT JOIN locked l ON l.product_id = w.product_id
    WHERE coalesce(l.available, 0) < w.quantity ORDER BY w.product_id COLLATE "C" LIMIT 1),
taken AS (
    UPDATE {schema}.stock s SET on_hand = s.on_hand - w.quantity, update_time = now()
    FROM wanted w JOIN locked l ON l.product_id = w.product_id
    JOIN {schema}.products p ON p.product_id = w.product_id
    WHERE s.product_id = w.product_id AND NOT EXISTS (SELECT FROM short)
    RETURNING s.product_id, p.sku, w.quantity, s.on_hand - s.reserved AS available),
sale AS (
    INSERT INTO {schema}.reservations AS r (reservation_id, state, expire_time, create_time, update_time)
    SELECT $1, 'COMMITTED', now(), now(), now() WHERE NOT EXISTS (SELECT FROM short)
    ON CONFLICT (reservation_id) DO UPDATE SET state = 'COMMITTED', update_time = now()
    WHERE r.state IN ('RELEASED', 'EXPIRED')
    RETURNING reservation_id),
sale_lines AS (
    INSERT INTO {schema}.reservation_lines (reservation_id, product_id, quantity)
    SELECT $1, product_id, quantity FROM wanted WHERE EXISTS (SELECT FROM sale)
    ON CONFLICT DO NOTHING)
SELECT (SELECT product_id FROM short) AS short_product_id, (SELECT available FROM short) AS short_available,
       EXISTS (SELECT FROM sale) AS committed,
       ARRAY(SELECT product_id FROM taken ORDER BY product_id) AS product_ids,
       ARRAY(SELECT sku FROM taken ORDER BY product_id) AS skus,
       ARRAY(SELECT quantity FROM taken ORDER BY product_id) AS quantities,
       ARRAY(SELECT available FROM taken ORDER BY product_id) AS available
""")


def _giving_back(pick: str) -> Sql:
    """Held units of the reservations ``pick`` selects (and locks) return to available stock;
    the reservations take state $2. Returns each with its lines."""
    return Sql("""
WITH r AS MATERIALIZED (""" + pick + """),
lines AS MATERIALIZED (
    SELECT l.reservation_id, l.product_id, l.quantity
    FROM {schema}.reservation_lines l JOIN r ON r.reservation_id = l.reservation_id),
units AS MATERIALIZED (SELECT product_id, sum(quantity)::bigint AS quantity FROM lines GROUP BY product_id),
locked AS MATERIALIZED (
    SELECT product_id FROM {schema}.stock WHERE product_id = ANY(ARRAY(SELECT product_id FROM units))
    ORDER BY product_id FOR UPDATE),
back AS (
    UPDATE {schema}.stock s SET reserved = s.reserved - u.quantity, update_time = now()
    FROM units u JOIN locked k ON k.product_id = u.product_id
    WHERE s.product_id = u.product_id),
moved AS (
    UPDATE {schema}.reservations t SET state = $2, update_time = now()
    FROM r WHERE t.reservation_id = r.reservation_id)
SELECT r.expire_time, r.reservation_id,
       ARRAY(SELECT product_id FROM lines l WHERE l.reservation_id = r.reservation_id ORDER BY product_id)
           AS product_ids,
       ARRAY(SELECT quantity FROM lines l WHERE l.reservation_id = r.reservation_id ORDER BY product_id)
           AS quantities
FROM r ORDER BY r.reservation_id
""")


# One reservation, if HELD (a concurrent commit or release is waited for).
GIVE_BACK_ONE = _giving_back(
    "SELECT reservation_id, expire_time FROM {schema}.reservations "
    "WHERE reservation_id = $1 AND state = 'HELD' FOR UPDATE")
# Up to $1 held reservations past their expiry; rows another transaction holds (a commit, a
# release, another replica's sweeper) are skipped.
GIVE_BACK_LAPSED = _giving_back(
    "SELECT reservation_id, expire_time FROM {schema}.reservations "
    "WHERE state = 'HELD' AND expire_time <= now() ORDER BY expire_time LIMIT $1 FOR UPDATE SKIP LOCKED")
# Several sales in one transaction: their reservations, then the stock rows of their products,
# each in id order (the lock order of every writer here).
LOCK_RESERVATIONS = Sql("SELECT reservation_id FROM {schema}.reservations WHERE reservation_id = ANY($1::text[]) "
                        "ORDER BY reservation_id FOR UPDATE")
LOCK_STOCK = Sql("SELECT product_id FROM {schema}.stock WHERE product_id = ANY($1::text[]) "
                 "ORDER BY product_id FOR UPDATE")
ANY_LAPSED = Sql("SELECT EXISTS (SELECT FROM {schema}.reservations WHERE state = 'HELD' AND expire_time <= now())")


@dataclass(frozen=True)
class Found:
    """A reservation as a statement found it (locked, for COMMIT) and the database's clock."""

    reservation: Reservation
    now: datetime


@dataclass(frozen=True)
class Committed(Found):
    committed: bool  # this statement committed it


@dataclass(frozen=True)
class Retaken:
    taken: tuple[Taken, ...]
    short: tuple[str, int] | None  # (product_id, available) of the first line short: nothing was taken
    committed: bool


def _lines(row: asyncpg.Record) -> tuple[Line, ...]:
    return tuple(Line(p, q) for p, q in zip(row["product_ids"], row["quantities"], strict=True))


def _taken(row: asyncpg.Record) -> tuple[Taken, ...]:
    return tuple(Taken(*values) for values in zip(row["product_ids"], row["skus"], row["quantities"],
                                                    row["available"], strict=True))


def _columns(lines: Sequence[Line]) -> tuple[list[str], list[int]]:
    return [line.product_id for line in lines], [line.quantity for line in lines]


async def reserve(session: Session, request: ReserveRequest) -> tuple[datetime, tuple[Taken, ...]] | None:
    """The new reservation's expire_time and the lines it could hold (roll back unless that
    is every line); None when the id exists already (nothing changed). A concurrent
    reservation of the same id waits for the other transaction, then sees its outcome."""
    row = await session.fetchrow(RESERVE, request.reservation_id, *_columns(request.lines),
                                 float(request.ttl_seconds))
    assert row is not None
    if row["expire_time"] is None:
        return None
    return row["expire_time"], _taken(row)


async def on_sale(session: Session, lines: Sequence[Line]) -> list[OnSale]:
    rows = await session.fetch(ON_SALE, *_columns(lines))
    return [OnSale(Line(r["product_id"], r["quantity"]), r["status"], r["available"]) for r in rows]


async def get(session: Session, reservation_id: str) -> Found | None:
    row = await session.fetchrow(GET, reservation_id)
    if row is None:
        return None
    return Found(Reservation(reservation_id, _lines(row), ReservationState(row["state"]), row["expire_time"]),
                 row["now"])


async def commit(session: Session, reservation_id: str, *, even_lapsed: bool) -> Committed | None:
    """Locks the reservation and commits it if HELD (and not lapsed, unless ``even_lapsed``);
    None if there is none. ``reservation`` is as found (its state before this statement)."""
    row = await session.fetchrow(COMMIT, reservation_id, even_lapsed)
    if row is None:
        return None
    lines = _lines(row)
    if row["committed"] and row["sold"] != len(lines):  # a line without its stock row: sell nothing
        raise RuntimeError(f"reservation {reservation_id}: {row['sold']} of {len(lines)} stock rows found")
    return Committed(Reservation(reservation_id, lines, ReservationState(row["state"]), row["expire_time"]),
                     row["now"], row["committed"])


async def retake(session: Session, reservation_id: str, lines: Sequence[Line]) -> Retaken:
    row = await session.fetchrow(RETAKE, reservation_id, *_columns(lines))
    assert row is not None
    short = None if row["short_product_id"] is None else (row["short_product_id"], row["short_available"])
    return Retaken(_taken(row), short, row["committed"])


def _given_back(rows: Sequence[asyncpg.Record], state: ReservationState) -> list[Reservation]:
    return [Reservation(r["reservation_id"], _lines(r), state, r["expire_time"]) for r in rows]


async def give_back(session: Session, reservation_id: str, state: ReservationState) -> Reservation | None:
    """The reservation, now in ``state``, if it was HELD; None (nothing changed) otherwise."""
    found = _given_back(await session.fetch(GIVE_BACK_ONE, reservation_id, state.value), state)
    return found[0] if found else None


async def any_lapsed(session: Session) -> bool:
    return bool(await session.fetchval(ANY_LAPSED))


async def expire_lapsed(session: Session, limit: int) -> list[Reservation]:
    """Up to ``limit`` held reservations past their expiry, now EXPIRED, their units back."""
    return _given_back(await session.fetch(GIVE_BACK_LAPSED, limit, ReservationState.EXPIRED.value),
                       ReservationState.EXPIRED)


async def lock_sales(session: Session, reservation_ids: Sequence[str], product_ids: Sequence[str]) -> None:
    """Locks the reservations, then the stock rows, of several sales about to be applied together."""
    await session.execute(LOCK_RESERVATIONS, sorted(set(reservation_ids)))
    await session.execute(LOCK_STOCK, sorted(set(product_ids)))
