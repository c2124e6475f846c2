"""The catalog's product and stock events, written to the outbox in the caller's transaction
(see services/runtime/events/outbox.py): they commit or vanish with the change."""

from __future__ import annotations

from collections.abc import Iterable

from commerce.catalog.v1 import catalog_events_pb2 as ev
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.convert import line_pb, product_pb, reservation_state_pb
from services.catalog.domain.product import Product
from services.catalog.domain.reservation import LOW_STOCK_THRESHOLD, Reservation
from services.runtime.events.outbox import emit


async def product_created(conn: AsyncConnection, tenant_id: str, product: Product) -> None:
    await emit(conn, ev.ProductCreated(product=product_pb(product)), tenant_id=tenant_id,
               aggregate_id=product.product_id)


async def product_updated(conn: AsyncConnection, tenant_id: str, product: Product, paths: Iterable[str]) -> None:
    """``paths``: the fields the update named (the update mask), or ``status`` for an archive."""
    event = ev.ProductUpdated(product=product_pb(product))
    event.update_mask.paths.extend(sorted(paths))
    await emit(conn, event, tenant_id=tenant_id, aggregate_id=product.product_id)


async def stock_reserved(conn: AsyncConnection, tenant_id: str, reservation: Reservation) -> None:
    event = ev.StockReserved(reservation_id=reservation.reservation_id,
                             lines=[line_pb(line) for line in reservation.lines])
    event.expire_time.FromDatetime(reservation.expire_time)
    await emit(conn, event, tenant_id=tenant_id, aggregate_id=reservation.reservation_id)


async def stock_released(conn: AsyncConnection, tenant_id: str, reservation: Reservation) -> None:
    """``reservation`` in its new state: RELEASED or EXPIRED."""
    event = ev.StockReleased(reservation_id=reservation.reservation_id,
                             lines=[line_pb(line) for line in reservation.lines],
                             state=reservation_state_pb(reservation.state))
    await emit(conn, event, tenant_id=tenant_id, aggregate_id=reservation.reservation_id)


async def stock_committed(conn: AsyncConnection, tenant_id: str, reservation: Reservation) -> None:
    event = ev.StockCommitted(reservation_id=reservation.reservation_id,
                              lines=[line_pb(line) for line in reservation.lines])
    await emit(conn, event, tenant_id=tenant_id, aggregate_id=reservation.reservation_id)


async def low_stock(conn: AsyncConnection, tenant_id: str, product_id: str, sku: str, available: int) -> None:
    event = ev.LowStock(product_id=product_id, sku=sku, available=available, threshold=LOW_STOCK_THRESHOLD)
    await emit(conn, event, tenant_id=tenant_id, aggregate_id=product_id)
