"""Carts and their lines in the tenant schema (SQLAlchemy Core).

Every change to a cart happens with its row locked (``SELECT ... FOR UPDATE``),
so concurrent changes of one shopper's cart queue instead of losing updates.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.cart.domain.cart import Line, StoredCart
from services.cart.domain.ids import new_cart_id
from services.cart.store.tables import cart_lines, carts


async def load(conn: AsyncConnection, customer_id: str, *, for_update: bool = False) -> StoredCart | None:
    stmt = select(carts).where(carts.c.customer_id == customer_id)
    row = (await conn.execute(stmt.with_for_update() if for_update else stmt)).first()
    if row is None:
        return None
    lines = await conn.execute(
        select(cart_lines.c.product_id, cart_lines.c.quantity, cart_lines.c.position)
        .where(cart_lines.c.cart_id == row.cart_id).order_by(cart_lines.c.position))
    return StoredCart(row.cart_id, row.customer_id, row.currency_code,
                      tuple(Line(r.product_id, r.quantity, r.position) for r in lines), row.update_time)


async def load_or_create(conn: AsyncConnection, customer_id: str) -> StoredCart:
    """The shopper's cart, locked for this transaction; created (empty) when there is none."""
    found = await load(conn, customer_id, for_update=True)
    if found is not None:
        return found
    # A concurrent first add may create it first: then ours inserts nothing and we lock theirs.
    await conn.execute(
        pg_insert(carts).values(cart_id=new_cart_id(), customer_id=customer_id, currency_code="",
                                create_time=func.now(), update_time=func.now())
        .on_conflict_do_nothing(index_elements=[carts.c.customer_id]))
    created = await load(conn, customer_id, for_update=True)
    assert created is not None
    return created


async def save(conn: AsyncConnection, before: StoredCart, after: StoredCart) -> StoredCart:
    """Writes the difference between two states of one locked cart; returns it as stored."""
    old = {line.product_id: line for line in before.lines}
    new = {line.product_id: line for line in after.lines}
    gone = [pid for pid in old if pid not in new]
    if gone:
        await conn.execute(cart_lines.delete().where(cart_lines.c.cart_id == before.cart_id,
                                                     cart_lines.c.product_id.in_(gone)))
    changed = [line for pid, line in new.items() if old.get(pid) != line]
    if changed:
        stmt = pg_insert(cart_lines).values([
            {"cart_id": after.cart_id, "product_id": line.product_id, "quantity": line.quantity,
             "position": line.position} for line in changed])
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[cart_lines.c.cart_id, cart_lines.c.product_id],
            set_={"quantity": stmt.excluded.quantity, "position": stmt.excluded.position}))
    row = (await conn.execute(
        carts.update().where(carts.c.cart_id == after.cart_id)
        .values(currency_code=after.currency_code, update_time=func.now()).returning(carts.c.update_time)
    )).one()
    return StoredCart(after.cart_id, after.customer_id, after.currency_code,
                      tuple(sorted(after.lines, key=lambda line: line.position)), row.update_time)
