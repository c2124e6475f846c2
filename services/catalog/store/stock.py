"""Stock levels in the tenant schema: one row per product, created with it.

Sellers' writes (SetStock, AdjustStock) go the SQLAlchemy path; GetStock, read on
every cart change, is one prepared statement. Reservations change stock in
store/reservations.py."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.domain.product import ProductStatus
from services.catalog.domain.stock import StockLevel
from services.catalog.store.tables import stock
from services.runtime.sql import Session, Sql

# The product's status comes along: who may see the stock is who may see the product.
READ = Sql("SELECT s.on_hand, s.reserved, s.update_time, p.status FROM {schema}.stock s "
           "JOIN {schema}.products p ON p.product_id = s.product_id WHERE s.product_id = $1")


def _level(row: Row[Any]) -> StockLevel:
    return StockLevel(row.product_id, row.on_hand, row.reserved, row.update_time)


async def create(conn: AsyncConnection, product_id: str) -> StockLevel:
    row = (await conn.execute(
        stock.insert().values(product_id=product_id, on_hand=0, reserved=0, update_time=func.now())
        .returning(*stock.c)
    )).one()
    return _level(row)


async def get(conn: AsyncConnection, product_id: str, *, for_update: bool = False) -> StockLevel | None:
    stmt = select(stock).where(stock.c.product_id == product_id)
    row = (await conn.execute(stmt.with_for_update() if for_update else stmt)).first()
    return None if row is None else _level(row)


async def save_on_hand(conn: AsyncConnection, level: StockLevel) -> StockLevel:
    row = (await conn.execute(
        stock.update().where(stock.c.product_id == level.product_id)
        .values(on_hand=level.on_hand, update_time=func.now()).returning(*stock.c)
    )).one()
    return _level(row)


async def read(session: Session, product_id: str) -> tuple[StockLevel, ProductStatus] | None:
    """The product's stock and its status (one statement)."""
    row = await session.fetchrow(READ, product_id)
    if row is None:
        return None
    return StockLevel(product_id, row["on_hand"], row["reserved"], row["update_time"]), ProductStatus(row["status"])
