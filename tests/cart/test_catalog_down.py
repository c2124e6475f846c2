"""When the catalog cannot be reached: what the cart's copy of the catalog knows is
still served without it (GetCart asks the catalog nothing then), and whatever needs
the catalog (adding units, a product the copy does not know) is UNAVAILABLE and
changes nothing."""

from __future__ import annotations

from datetime import UTC

import grpc
import pytest
from commerce.cart.v1 import cart_pb2 as pb

from services.runtime.db import Database, schema_for
from tests.cart.conftest import Shop, blind, copied_version
from tests.catalog.harness import count_rows
from tests.errors import error_details


async def forget(cart_db: Database, tenant: str, product_id: str) -> None:
    """Takes the product out of the cart's copy, as if it was created before the copy existed."""
    async with cart_db.session_in(schema_for(tenant)) as session:
        await session.conn.execute(f'DELETE FROM "{session.schema}".products WHERE product_id = $1', product_id)


async def test_get_cart_asks_the_catalog_nothing_when_the_copy_knows_every_product(
        shop: Shop, blind_channel: grpc.aio.Channel) -> None:
    shoe = await shop.product(price=1250, title="Trail shoe", attributes={"weight_grams": "850"})
    sock = await shop.product(price=399, title="Wool sock")
    await shop.add(shoe.product_id, 2)
    served = await shop.add(sock.product_id, 3)
    cart = await blind(shop, blind_channel).get()
    assert cart == served
    assert [(line.title, line.unit_price.amount_minor, line.unit_weight_grams) for line in cart.lines] == [
        ("Trail shoe", 1250, 850), ("Wool sock", 399, 0)]


async def test_adding_is_unavailable_and_changes_nothing(shop: Shop, blind_channel: grpc.aio.Channel,
                                                         cart_db: Database) -> None:
    shoe = await shop.product()
    await shop.add(shoe.product_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await blind(shop, blind_channel).add(shoe.product_id)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_details(err.value)[0].reason == "CATALOG_UNAVAILABLE"
    assert (await shop.get()).lines[0].quantity == 1
    assert await count_rows(cart_db, shop.tenant, "cart_lines") == 1


async def test_lowering_removing_and_clearing_need_no_catalog(shop: Shop, blind_channel: grpc.aio.Channel) -> None:
    shoe, sock = await shop.product(), await shop.product()
    await shop.add(shoe.product_id, 3)
    await shop.add(sock.product_id, 2)
    cut = blind(shop, blind_channel)
    lowered = await cut.cart.UpdateCartItem(pb.UpdateCartItemRequest(product_id=shoe.product_id, quantity=1),
                                            metadata=shop.customer())
    assert [line.quantity for line in lowered.cart.lines] == [1, 2]
    removed = await cut.cart.RemoveCartItem(pb.RemoveCartItemRequest(product_id=sock.product_id),
                                            metadata=shop.customer())
    assert [line.product_id for line in removed.cart.lines] == [shoe.product_id]
    cleared = await cut.cart.ClearCart(pb.ClearCartRequest(), metadata=shop.customer())
    assert list(cleared.cart.lines) == []


async def test_a_product_the_copy_does_not_know_is_read_from_the_catalog_and_kept(
        shop: Shop, blind_channel: grpc.aio.Channel, cart_db: Database) -> None:
    shoe = await shop.product(price=1250)
    await shop.copied(shoe)  # from its event, which will not come again
    await shop.add(shoe.product_id)
    await forget(cart_db, shop.tenant, shoe.product_id)
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the blind replica cannot price it
        await blind(shop, blind_channel).get()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_details(err.value)[0].reason == "CATALOG_UNAVAILABLE"
    assert (await shop.get()).lines[0].unit_price.amount_minor == 1250  # read from the catalog...
    assert await copied_version(cart_db, shop.tenant, shoe.product_id) == shoe.update_time.ToDatetime(UTC)
    assert (await blind(shop, blind_channel).get()).lines[0].unit_price.amount_minor == 1250  # ...and kept
