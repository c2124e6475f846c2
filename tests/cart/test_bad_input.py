"""Bad input is INVALID_ARGUMENT naming the field, and nothing is written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import pytest
from commerce.cart.v1 import cart_pb2 as pb

from services.runtime.db import Database
from tests.cart.conftest import Shop
from tests.catalog.harness import count_rows
from tests.errors import error_details, violated_fields

PRODUCT = "prd_01JZZZZZZZZZZZZZZZZZZZZZZZ"
Call = Callable[[Shop], Awaitable[object]]

CASES: list[tuple[str, Call, str]] = [
    ("add without product", lambda s: s.cart.AddCartItem(pb.AddCartItemRequest(quantity=1), metadata=s.customer()),
     "product_id"),
    ("add zero units", lambda s: s.cart.AddCartItem(pb.AddCartItemRequest(product_id=PRODUCT, quantity=0),
                                                    metadata=s.customer()), "quantity"),
    ("add negative units", lambda s: s.cart.AddCartItem(pb.AddCartItemRequest(product_id=PRODUCT, quantity=-2),
                                                        metadata=s.customer()), "quantity"),
    ("add 1001 units", lambda s: s.cart.AddCartItem(pb.AddCartItemRequest(product_id=PRODUCT, quantity=1001),
                                                    metadata=s.customer()), "quantity"),
    ("add with a bad request_id", lambda s: s.cart.AddCartItem(
        pb.AddCartItemRequest(product_id=PRODUCT, quantity=1, request_id="not ok!"), metadata=s.customer()),
     "request_id"),
    ("update without product", lambda s: s.cart.UpdateCartItem(pb.UpdateCartItemRequest(quantity=1),
                                                               metadata=s.customer()), "product_id"),
    ("update to zero", lambda s: s.cart.UpdateCartItem(pb.UpdateCartItemRequest(product_id=PRODUCT, quantity=0),
                                                       metadata=s.customer()), "quantity"),
    ("remove without product", lambda s: s.cart.RemoveCartItem(pb.RemoveCartItemRequest(), metadata=s.customer()),
     "product_id"),
    ("clear with a bad request_id", lambda s: s.cart.ClearCart(pb.ClearCartRequest(request_id="x" * 129),
                                                               metadata=s.customer()), "request_id"),
]


@pytest.mark.parametrize(("case", "call", "field"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_names_the_field_and_writes_nothing(shop: Shop, cart_db: Database, case: str, call: Call,
                                                            field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(shop)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, case
    assert violated_fields(err.value) == [field]
    for table in ("carts", "cart_lines", "idempotency_keys"):
        assert await count_rows(cart_db, shop.tenant, table) == 0


async def test_a_refused_add_writes_nothing(shop: Shop, cart_db: Database) -> None:
    shoe = await shop.product(stock=1)
    with pytest.raises(grpc.aio.AioRpcError):
        await shop.add(shoe.product_id, 2, request_id="too-many")
    for table in ("carts", "cart_lines", "idempotency_keys"):
        assert await count_rows(cart_db, shop.tenant, table) == 0


@pytest.mark.parametrize("product_id", ["../etc/passwd", "prd_short", "prd_01jzzzzzzzzzzzzzzzzzzzzzzz"])
async def test_a_malformed_product_id_is_product_not_found_and_writes_nothing(shop: Shop, cart_db: Database,
                                                                               product_id: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.add(product_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(err.value)[0].reason == "PRODUCT_NOT_FOUND"
    assert await count_rows(cart_db, shop.tenant, "carts") == 0
