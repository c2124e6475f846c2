"""Concurrent changes of one cart queue on its row lock: no update is lost."""

from __future__ import annotations

import asyncio

from tests.cart.conftest import Shop


async def test_concurrent_adds_of_one_product_keep_every_unit(shop: Shop) -> None:
    shoe = await shop.product(stock=500)
    await asyncio.gather(*(shop.add(shoe.product_id, 2) for _ in range(20)))
    cart = await shop.get()
    assert [(line.product_id, line.quantity) for line in cart.lines] == [(shoe.product_id, 40)]


async def test_concurrent_first_adds_of_different_products_share_one_cart(shop: Shop) -> None:
    products = [await shop.product() for _ in range(8)]
    carts = await asyncio.gather(*(shop.add(p.product_id) for p in products))
    assert len({cart.cart_id for cart in carts}) == 1
    assert {line.product_id for line in (await shop.get()).lines} == {p.product_id for p in products}


async def test_concurrent_retries_of_one_request_add_once(shop: Shop) -> None:
    shoe = await shop.product()
    answers = await asyncio.gather(*(shop.add(shoe.product_id, 3, request_id="once") for _ in range(10)))
    assert all(answer == answers[0] for answer in answers)
    assert (await shop.get()).lines[0].quantity == 3
