"""A confirmed order takes the units it bought out of the buyer's cart."""

from __future__ import annotations

from commerce.order.v1 import order_events_pb2, order_pb2

from services.cart.checkout import on_order_confirmed
from services.runtime.db import Database
from tests.cart.conftest import Shop


def confirmed(customer_id: str, *lines: tuple[str, int]) -> order_events_pb2.OrderConfirmed:
    return order_events_pb2.OrderConfirmed(order=order_pb2.Order(
        order_id="ord_1", customer_id=customer_id, status=order_pb2.ORDER_STATUS_CONFIRMED,
        lines=[order_pb2.OrderLine(product_id=pid, quantity=qty) for pid, qty in lines]))


async def test_the_bought_units_leave_the_buyers_cart_only(shop: Shop, cart_db: Database) -> None:
    shoe, sock = await shop.product(), await shop.product()
    await shop.add(shoe.product_id, 2, who=shop.customer("alice"))
    await shop.add(sock.product_id, 1, who=shop.customer("alice"))
    await shop.add(shoe.product_id, 2, who=shop.customer("bob"))
    async with cart_db.transaction(shop.tenant) as session:
        await on_order_confirmed(session, confirmed("alice", (shoe.product_id, 2)), shop.tenant)
    alice = await shop.get(shop.customer("alice"))
    assert [(line.product_id, line.quantity) for line in alice.lines] == [(sock.product_id, 1)]
    assert (await shop.get(shop.customer("bob"))).lines[0].quantity == 2


async def test_units_added_while_checking_out_stay(shop: Shop, cart_db: Database) -> None:
    shoe = await shop.product()
    await shop.add(shoe.product_id, 5)
    async with cart_db.transaction(shop.tenant) as session:
        await on_order_confirmed(session, confirmed("user-alice", (shoe.product_id, 3)), shop.tenant)
    assert (await shop.get()).lines[0].quantity == 2


async def test_an_order_of_a_shopper_without_a_cart_changes_nothing(shop: Shop, cart_db: Database) -> None:
    async with cart_db.transaction(shop.tenant) as session:
        await on_order_confirmed(session, confirmed("guest:nobody", ("prd_x", 1)), shop.tenant)
    assert list((await shop.get(shop.guest("guest:nobody"))).lines) == []


async def test_a_cart_emptied_by_an_order_forgets_its_currency(shop: Shop, cart_db: Database) -> None:
    shoe = await shop.product()
    await shop.add(shoe.product_id, 2, who=shop.customer("carol"))
    async with cart_db.transaction(shop.tenant) as session:
        await on_order_confirmed(session, confirmed("carol", (shoe.product_id, 2)), shop.tenant)
    async with cart_db.session(shop.tenant) as session:
        assert await session.conn.fetchval(
            f'SELECT currency_code FROM "{session.schema}".carts WHERE customer_id = $1', "carol") == ""
    assert list((await shop.get(shop.customer("carol"))).lines) == []
