"""No transaction stays open, and no cart is locked, while the cart asks the catalog:
a change of the same cart goes through while an AddCartItem waits on a slow catalog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping

import pytest
from commerce.cart.v1 import cart_pb2 as pb

from services.cart.carts import Carts
from services.cart.catalog_client import CatalogClient
from services.cart.domain.catalog import Product
from services.cart.servicer import ADDED
from services.runtime.context import Caller
from services.runtime.db import Database
from services.runtime.server import Running
from services.runtime.settings import Settings
from tests.cart.conftest import Shop

DELAY_SECONDS = 1.0


async def open_transactions(cart_db: Database) -> int:
    """Connections to the cart's database inside a transaction that is waiting for its client."""
    async with cart_db.session_in("public") as session:
        count: int = await session.conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state LIKE 'idle in transaction%'",
            cart_db.database)
    return count


class SlowCatalog:
    """The real catalog, each call held ``DELAY_SECONDS`` first. ``asked`` is set once a
    call waits; ``open_during_calls`` notes, halfway through each call's wait, how many
    transactions on the cart's database were waiting for their client."""

    def __init__(self, catalog: CatalogClient, cart_db: Database) -> None:
        self._catalog = catalog
        self._cart_db = cart_db
        self.asked = asyncio.Event()
        self.open_during_calls: list[int] = []

    async def _wait(self) -> None:
        self.asked.set()
        await asyncio.sleep(DELAY_SECONDS / 2)
        self.open_during_calls.append(await open_transactions(self._cart_db))
        await asyncio.sleep(DELAY_SECONDS / 2)

    async def product(self, token: str, product_id: str) -> Product | None:
        await self._wait()
        return await self._catalog.product(token, product_id)

    async def products(self, token: str, product_ids: Iterable[str]) -> Mapping[str, Product | None]:
        await self._wait()
        return await self._catalog.products(token, product_ids)

    async def available(self, token: str, product_id: str) -> int | None:
        await self._wait()
        return await self._catalog.available(token, product_id)


@pytest.fixture
async def slow_catalog(catalog_server: Running, cart_db: Database) -> AsyncIterator[SlowCatalog]:
    client = CatalogClient(f"127.0.0.1:{catalog_server.port}")
    yield SlowCatalog(client, cart_db)
    await client.close()


@pytest.fixture
async def slow_carts(cart_settings: Settings, slow_catalog: SlowCatalog) -> AsyncIterator[Carts]:
    """The cart's use cases on its database, asking the slow catalog."""
    db = Database(cart_settings.database_url, cart_settings.database_name("cart"), 2)
    yield Carts(db, slow_catalog)
    await db.dispose()


async def test_a_change_of_the_cart_is_not_blocked_while_an_add_waits_for_the_catalog(
        shop: Shop, slow_carts: Carts, slow_catalog: SlowCatalog, cart_db: Database) -> None:
    shoe, sock = await shop.product(), await shop.product()
    await shop.add(shoe.product_id, 3)
    caller = Caller("user-alice", shop.tenant, frozenset({"customer"}),
                    shop.keys.mint(tenant=shop.tenant, roles=["customer"], sub="user-alice"))
    adding = asyncio.create_task(slow_carts.add(caller, sock.product_id, 2, None, ADDED))
    await asyncio.wait_for(slow_catalog.asked.wait(), 5)
    lowered = await asyncio.wait_for(shop.cart.UpdateCartItem(  # lowering needs no catalog
        pb.UpdateCartItemRequest(product_id=shoe.product_id, quantity=1), metadata=shop.customer()),
        DELAY_SECONDS / 2)
    assert not adding.done()
    assert [(line.product_id, line.quantity) for line in lowered.cart.lines] == [(shoe.product_id, 1)]
    added = (await adding).cart
    assert [(line.product_id, line.quantity) for line in added.lines] == [(shoe.product_id, 1), (sock.product_id, 2)]
    assert await shop.get() == added
    assert slow_catalog.open_during_calls and set(slow_catalog.open_during_calls) == {0}
