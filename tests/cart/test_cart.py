"""Adding, changing, removing and clearing lines; prices and totals read from the catalog."""

from __future__ import annotations

import grpc
import pytest
from commerce.cart.v1 import cart_pb2 as pb
from commerce.catalog.v1 import catalog_pb2 as cpb

from tests.cart.conftest import Shop
from tests.errors import error_details


async def test_a_shopper_without_a_cart_gets_an_empty_one(shop: Shop) -> None:
    cart = await shop.get()
    assert list(cart.lines) == [] and cart.cart_id == "" and cart.item_count == 0
    assert cart.subtotal.amount_minor == 0


async def test_added_items_are_priced_from_the_catalog_with_totals(shop: Shop) -> None:
    shoe = await shop.product(price=1250, title="Trail shoe")
    sock = await shop.product(price=399, title="Wool sock")
    await shop.add(shoe.product_id, 2)
    cart = await shop.add(sock.product_id, 3)
    assert [(line.product_id, line.title, line.quantity) for line in cart.lines] == [
        (shoe.product_id, "Trail shoe", 2), (sock.product_id, "Wool sock", 3)]
    assert [line.unit_price.amount_minor for line in cart.lines] == [1250, 399]
    assert [line.line_total.amount_minor for line in cart.lines] == [2500, 1197]
    assert (cart.subtotal.currency_code, cart.subtotal.amount_minor) == ("USD", 3697)
    assert cart.currency_code == "USD" and cart.item_count == 5
    assert cart.cart_id.startswith("crt_") and cart.name == f"carts/{cart.cart_id}"
    assert cart.customer_id == "user-alice"
    assert await shop.get() == cart


async def test_adding_a_product_again_raises_its_quantity(shop: Shop) -> None:
    shoe = await shop.product()
    await shop.add(shoe.product_id, 2)
    cart = await shop.add(shoe.product_id, 3)
    assert [(line.product_id, line.quantity) for line in cart.lines] == [(shoe.product_id, 5)]


async def test_the_cart_shows_the_current_catalog_price(shop: Shop) -> None:
    shoe = await shop.product(price=1000)
    await shop.add(shoe.product_id, 2)
    await shop.set_price(shoe.product_id, 1500)
    cart = await shop.get()
    assert cart.lines[0].unit_price.amount_minor == 1500
    assert cart.subtotal.amount_minor == 3000


async def test_changing_a_quantity_sets_it(shop: Shop) -> None:
    shoe = await shop.product(price=100)
    await shop.add(shoe.product_id, 5)
    reply = await shop.cart.UpdateCartItem(pb.UpdateCartItemRequest(product_id=shoe.product_id, quantity=2),
                                           metadata=shop.customer())
    assert reply.cart.lines[0].quantity == 2 and reply.cart.subtotal.amount_minor == 200
    reply = await shop.cart.UpdateCartItem(pb.UpdateCartItemRequest(product_id=shoe.product_id, quantity=7),
                                           metadata=shop.customer())
    assert reply.cart.lines[0].quantity == 7


async def test_changing_or_removing_a_product_not_in_the_cart_is_not_found(shop: Shop) -> None:
    shoe = await shop.product()
    for call in (shop.cart.UpdateCartItem(pb.UpdateCartItemRequest(product_id=shoe.product_id, quantity=1),
                                          metadata=shop.customer()),
                 shop.cart.RemoveCartItem(pb.RemoveCartItemRequest(product_id=shoe.product_id),
                                          metadata=shop.customer())):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_removing_a_line_keeps_the_others(shop: Shop) -> None:
    shoe, sock = await shop.product(price=1000), await shop.product(price=10)
    await shop.add(shoe.product_id)
    await shop.add(sock.product_id, 4)
    reply = await shop.cart.RemoveCartItem(pb.RemoveCartItemRequest(product_id=shoe.product_id),
                                           metadata=shop.customer())
    assert [line.product_id for line in reply.cart.lines] == [sock.product_id]
    assert reply.cart.subtotal.amount_minor == 40


async def test_clearing_empties_the_cart_and_an_empty_cart_clears_fine(shop: Shop) -> None:
    empty = await shop.cart.ClearCart(pb.ClearCartRequest(), metadata=shop.customer())
    assert list(empty.cart.lines) == []
    shoe = await shop.product()
    await shop.add(shoe.product_id, 2)
    reply = await shop.cart.ClearCart(pb.ClearCartRequest(), metadata=shop.customer())
    assert list(reply.cart.lines) == [] and reply.cart.item_count == 0 and reply.cart.currency_code == ""
    assert list((await shop.get()).lines) == []


async def test_a_product_in_another_currency_is_refused(shop: Shop) -> None:
    usd, eur = await shop.product(currency="USD"), await shop.product(currency="EUR")
    await shop.add(usd.product_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.add(eur.product_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(err.value)[0].reason == "CURRENCY_MISMATCH"
    assert [line.product_id for line in (await shop.get()).lines] == [usd.product_id]


async def test_an_emptied_cart_takes_any_currency_again(shop: Shop) -> None:
    usd, eur = await shop.product(currency="USD"), await shop.product(currency="EUR")
    await shop.add(usd.product_id)
    await shop.cart.RemoveCartItem(pb.RemoveCartItemRequest(product_id=usd.product_id), metadata=shop.customer())
    cart = await shop.add(eur.product_id)
    assert cart.currency_code == "EUR" and cart.subtotal.currency_code == "EUR"


async def test_more_than_the_available_stock_is_refused(shop: Shop) -> None:
    shoe = await shop.product(stock=3)
    await shop.add(shoe.product_id, 2)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.add(shoe.product_id, 2)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_details(err.value)[0]
    assert info.reason == "INSUFFICIENT_STOCK" and info.metadata["available"] == "3"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.cart.UpdateCartItem(pb.UpdateCartItemRequest(product_id=shoe.product_id, quantity=4),
                                       metadata=shop.customer())
    assert error_details(err.value)[0].reason == "INSUFFICIENT_STOCK"
    assert (await shop.get()).lines[0].quantity == 2


async def test_lowering_a_quantity_works_even_when_stock_ran_out(shop: Shop) -> None:
    shoe = await shop.product(stock=5)
    await shop.add(shoe.product_id, 4)
    await shop.catalog.SetStock(cpb.SetStockRequest(product_id=shoe.product_id, on_hand=0), metadata=shop.seller)
    reply = await shop.cart.UpdateCartItem(pb.UpdateCartItemRequest(product_id=shoe.product_id, quantity=1),
                                           metadata=shop.customer())
    assert reply.cart.lines[0].quantity == 1


async def test_a_line_is_limited_to_a_thousand_units(shop: Shop) -> None:
    shoe = await shop.product(stock=5000)
    await shop.add(shoe.product_id, 1000)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.add(shoe.product_id, 1)
    assert error_details(err.value)[0].reason == "QUANTITY_LIMIT"


async def test_unknown_and_archived_products_cannot_be_added(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.add("prd_01JZZZZZZZZZZZZZZZZZZZZZZZ")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    shoe = await shop.product()
    await shop.archive(shoe.product_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.add(shoe.product_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(err.value)[0].reason == "PRODUCT_NOT_AVAILABLE"


async def test_a_line_whose_product_was_archived_is_shown_apart_and_left_out_of_the_totals(shop: Shop) -> None:
    shoe, sock = await shop.product(price=1000), await shop.product(price=10)
    await shop.add(shoe.product_id)
    await shop.add(sock.product_id, 2)
    await shop.archive(shoe.product_id)
    cart = await shop.get()
    assert [line.product_id for line in cart.lines] == [sock.product_id]
    assert [(line.product_id, line.unavailable_reason, line.HasField("unit_price"))
            for line in cart.unavailable_lines] == [(shoe.product_id, "PRODUCT_NOT_AVAILABLE", False)]
    assert cart.subtotal.amount_minor == 20 and cart.item_count == 2
    reply = await shop.cart.RemoveCartItem(pb.RemoveCartItemRequest(product_id=shoe.product_id),
                                           metadata=shop.customer())
    assert list(reply.cart.unavailable_lines) == []


async def test_a_retry_with_the_same_request_id_adds_only_once(shop: Shop) -> None:
    shoe = await shop.product()
    first = await shop.add(shoe.product_id, 2, request_id="add-1")
    again = await shop.add(shoe.product_id, 2, request_id="add-1")
    assert again == first
    assert (await shop.get()).lines[0].quantity == 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.add(shoe.product_id, 3, request_id="add-1")
    assert error_details(err.value)[0].reason == "REQUEST_ID_REUSED"


async def test_two_shoppers_may_use_the_same_request_id(shop: Shop) -> None:
    shoe = await shop.product()
    alice = await shop.add(shoe.product_id, 2, request_id="same", who=shop.customer("alice"))
    bob = await shop.add(shoe.product_id, 2, request_id="same", who=shop.customer("bob"))
    assert alice.customer_id == "alice" and bob.customer_id == "bob" and alice.cart_id != bob.cart_id


async def test_a_retried_removal_returns_the_first_answer(shop: Shop) -> None:
    shoe = await shop.product()
    await shop.add(shoe.product_id)
    request = pb.RemoveCartItemRequest(product_id=shoe.product_id, request_id="rm-1")
    first = await shop.cart.RemoveCartItem(request, metadata=shop.customer())
    again = await shop.cart.RemoveCartItem(request, metadata=shop.customer())
    assert again == first
