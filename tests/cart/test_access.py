"""Whose cart is whose: every shopper sees only their own, in their own tenant."""

from __future__ import annotations

import grpc
import pytest
from commerce.cart.v1 import cart_pb2 as pb
from commerce.cart.v1 import cart_pb2_grpc

from tests.cart.conftest import Shop, new_shop
from tests.errors import error_details
from tests.tokens import TestKeys


async def test_a_guest_cart_is_separate_from_a_customer_cart(shop: Shop) -> None:
    shoe, sock = await shop.product(), await shop.product()
    await shop.add(shoe.product_id, who=shop.customer())
    await shop.add(sock.product_id, who=shop.guest())
    guest = await shop.get(shop.guest())
    assert [line.product_id for line in guest.lines] == [sock.product_id]
    assert guest.customer_id == "guest:0123abcd"
    assert [line.product_id for line in (await shop.get(shop.customer())).lines] == [shoe.product_id]


async def test_a_customer_never_sees_or_changes_another_customers_cart(shop: Shop) -> None:
    shoe = await shop.product()
    await shop.add(shoe.product_id, 3, who=shop.customer("alice"))
    bob = shop.customer("bob")
    assert list((await shop.get(bob)).lines) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.cart.RemoveCartItem(pb.RemoveCartItemRequest(product_id=shoe.product_id), metadata=bob)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    await shop.cart.ClearCart(pb.ClearCartRequest(), metadata=bob)
    assert (await shop.get(shop.customer("alice"))).lines[0].quantity == 3


async def test_the_same_subject_has_a_separate_cart_in_each_tenant(
        shop: Shop, cart_channel: grpc.aio.Channel, catalog_channel: grpc.aio.Channel, cart_keys: TestKeys) -> None:
    other = await new_shop(cart_channel, catalog_channel, cart_keys)
    shoe = await shop.product()
    await shop.add(shoe.product_id, who=shop.customer("alice"))
    assert list((await other.get(other.customer("alice"))).lines) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:  # the other tenant's product does not exist here
        await other.add(shoe.product_id, who=other.customer("alice"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("role", ["seller", "owner", "admin", "service"])
async def test_staff_and_services_have_no_cart(shop: Shop, role: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.get(shop.as_(role))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_details(err.value)[0].reason == "ROLE_NOT_ALLOWED"


async def test_a_call_without_a_token_is_unauthenticated(cart_channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cart_pb2_grpc.CartServiceStub(cart_channel).GetCart(pb.GetCartRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_unprovisioned_tenant_is_not_found(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.get(shop.keys.metadata(tenant="nowhere-shop", roles=["customer"]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
