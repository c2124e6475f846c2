"""The catalog's product and stock events, written to the outbox in the caller's transaction
(see services/runtime/events/outbox.py): they commit or vanish with the change.

Product events and SetStock/AdjustStock's LowStock go the cold path (``emit`` on a
SQLAlchemy connection); the reservation and import paths write rows in their asyncpg
session (``write``). An import publishes one ProductsImported per batch (per MB), not
one event per product. Only events someone consumes are written: StockReserved and StockCommitted
are no longer published (nothing consumed them; the reservation row records each step).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from commerce.catalog.v1 import catalog_events_pb2 as ev
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.convert import line_pb, product_pb, reservation_state_pb
from services.catalog.domain.product import Product
from services.catalog.domain.reservation import LOW_STOCK_THRESHOLD, Line, Reservation, Taken
from services.runtime.events.outbox import INSERT_SQL, OutboxRow, emit, outbox_row
from services.runtime.sql import Session


async def product_created(conn: AsyncConnection, tenant_id: str, product: Product) -> None:
    await emit(conn, ev.ProductCreated(product=product_pb(product)), tenant_id=tenant_id,
               aggregate_id=product.product_id)


async def product_updated(conn: AsyncConnection, tenant_id: str, product: Product, paths: Iterable[str]) -> None:
    """``paths``: the fields the update named (the update mask), or ``status`` for an archive."""
    event = ev.ProductUpdated(product=product_pb(product))
    event.update_mask.paths.extend(sorted(paths))
    await emit(conn, event, tenant_id=tenant_id, aggregate_id=product.product_id)


def _low_stock(product_id: str, sku: str, available: int) -> ev.LowStock:
    return ev.LowStock(product_id=product_id, sku=sku, available=available, threshold=LOW_STOCK_THRESHOLD)


async def low_stock(conn: AsyncConnection, tenant_id: str, product_id: str, sku: str, available: int) -> None:
    await emit(conn, _low_stock(product_id, sku, available), tenant_id=tenant_id, aggregate_id=product_id)


def low_stock_rows(tenant_id: str, crossed: Iterable[Taken]) -> list[OutboxRow]:
    return [outbox_row(_low_stock(t.product_id, t.sku, t.available), tenant_id=tenant_id, aggregate_id=t.product_id)
            for t in crossed]


def stock_released_row(tenant_id: str, reservation: Reservation) -> OutboxRow:
    """``reservation`` in its new state: RELEASED or EXPIRED."""
    event = ev.StockReleased(reservation_id=reservation.reservation_id,
                             lines=[line_pb(line) for line in reservation.lines],
                             state=reservation_state_pb(reservation.state))
    return outbox_row(event, tenant_id=tenant_id, aggregate_id=reservation.reservation_id)


def stock_shortfall_row(tenant_id: str, reservation_id: str, lines: Sequence[Line], product_id: str,
                        available: int) -> OutboxRow:
    event = ev.StockShortfall(reservation_id=reservation_id, lines=[line_pb(line) for line in lines],
                              product_id=product_id, available=max(available, 0))
    return outbox_row(event, tenant_id=tenant_id, aggregate_id=reservation_id)


async def write(session: Session, rows: Sequence[OutboxRow]) -> None:
    """Writes ``rows`` in ``session``'s transaction (one round trip); the relay gets them after COMMIT."""
    if rows:
        await session.executemany(INSERT_SQL, [row.args() for row in rows])
        session.add_events(*rows)


EVENT_BYTES_MAX = 900_000  # NATS refuses messages above 1 MB by default


def products_imported_rows(tenant_id: str, created: Sequence[Product], updated: Sequence[Product]) -> list[OutboxRow]:
    """ProductsImported events of one import, each kept under EVENT_BYTES_MAX."""
    rows: list[OutboxRow] = []
    event, size = ev.ProductsImported(), 0
    for kind, products in (("created", created), ("updated", updated)):
        for product in products:
            message = product_pb(product)
            if size and size + message.ByteSize() > EVENT_BYTES_MAX:
                rows.append(_imported_row(tenant_id, event))
                event, size = ev.ProductsImported(), 0
            getattr(event, kind).append(message)
            size += message.ByteSize() + 8
    if size:
        rows.append(_imported_row(tenant_id, event))
    return rows


def _imported_row(tenant_id: str, event: ev.ProductsImported) -> OutboxRow:
    first = event.created[0] if event.created else event.updated[0]
    return outbox_row(event, tenant_id=tenant_id, aggregate_id=first.product_id)
