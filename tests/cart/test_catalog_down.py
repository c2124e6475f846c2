"""When the catalog cannot be reached, the cart says so (UNAVAILABLE) and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from commerce.cart.v1 import cart_pb2_grpc

from services.cart.app import assemble
from services.runtime.db import Database
from services.runtime.server import Running, create_server
from services.runtime.settings import Settings
from tests.cart.conftest import Shop
from tests.catalog.harness import count_rows, error_details
from tests.conftest import free_port
from tests.tokens import TestKeys


@pytest.fixture
async def blind_cart(cart_settings: Settings, cart_keys: TestKeys, cart_server: Running) -> AsyncIterator[Running]:
    """A second cart replica on the same database, whose catalog address answers nothing."""
    db = Database(cart_settings.database_url, cart_settings.database_name("cart"), 2)
    app = assemble(db, cart_keys.verifier(), cart_settings, f"127.0.0.1:{free_port()}")
    running = await create_server(app, "127.0.0.1:0")
    yield running
    await running.stop(0)


async def test_a_cart_that_cannot_be_priced_is_unavailable_and_nothing_is_added(
        shop: Shop, blind_cart: Running, cart_db: Database) -> None:
    shoe = await shop.product()
    await shop.add(shoe.product_id)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{blind_cart.port}") as channel:
        blind = Shop(shop.tenant, cart_pb2_grpc.CartServiceStub(channel), shop.catalog, shop.keys)
        for call in (blind.get(), blind.add(shoe.product_id)):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_details(err.value)[0].reason == "CATALOG_UNAVAILABLE"
    assert (await shop.get()).lines[0].quantity == 1
    assert await count_rows(cart_db, shop.tenant, "cart_lines") == 1
