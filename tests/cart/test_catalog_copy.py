"""The cart's copy of the catalog: kept current by the catalog's product events (the
newest version of a product wins, whatever order its events come in, however often),
and never showing a shopper what the catalog would hide from them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import grpc
import pytest
from commerce.cart.v1 import cart_pb2 as pb
from commerce.catalog.v1 import catalog_events_pb2 as ev
from commerce.catalog.v1 import catalog_pb2 as cpb
from commerce.common.v1 import event_pb2, money_pb2
from nats.js import JetStreamContext
from prometheus_client import REGISTRY

from services.cart.catalog_copy import DURABLE
from services.runtime.db import Database, schema_for
from services.runtime.events import naming
from tests.cart.conftest import Shop, blind, copied_version, new_shop
from tests.errors import error_details
from tests.tokens import TestKeys

WAIT_SECONDS = 10.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT_SECONDS} s: {what}")
        await asyncio.sleep(0.02)


def changed(product: cpb.Product, *, price: int, later_seconds: float) -> cpb.Product:
    """``product`` with another price, as the catalog would send it ``later_seconds`` after its update_time."""
    copy = cpb.Product()
    copy.CopyFrom(product)
    copy.price.CopyFrom(money_pb2.Money(currency_code=product.price.currency_code, amount_minor=price))
    copy.update_time.FromDatetime(product.update_time.ToDatetime() + timedelta(seconds=later_seconds))
    return copy


async def publish(js: JetStreamContext, tenant: str, product: cpb.Product, *, event_id: str | None = None) -> str:
    """Publishes ProductUpdated as the catalog's relay would; a given ``event_id`` is
    published again as a new message (another Nats-Msg-Id), as a re-published copy is."""
    event_id = event_id or str(uuid.uuid4())
    event = ev.ProductUpdated(product=product, metadata=event_pb2.EventMetadata(
        event_id=event_id, event_type=ev.ProductUpdated.DESCRIPTOR.full_name, tenant_id=tenant,
        aggregate_id=product.product_id))
    await js.publish(naming.subject_for(event.DESCRIPTOR, tenant), event.SerializeToString(), headers={
        naming.MSG_ID: str(uuid.uuid4()), naming.EVENT_TYPE: event.DESCRIPTOR.full_name, naming.TENANT: tenant})
    return event_id


async def consumed(cart_db: Database, tenant: str, event_id: str) -> None:
    async def in_inbox() -> bool:
        async with cart_db.session_in(schema_for(tenant)) as session:
            return bool(await session.conn.fetchval(
                f'SELECT 1 FROM "{session.schema}".inbox WHERE consumer = $1 AND event_id = $2', DURABLE, event_id))
    await eventually(in_inbox, f"event {event_id} consumed")


def duplicates_skipped() -> float:
    return REGISTRY.get_sample_value("commerce_events_duplicate_total", {"consumer": DURABLE}) or 0.0


async def test_a_price_change_shows_in_the_cart_once_its_event_is_consumed(
        shop: Shop, blind_channel: grpc.aio.Channel) -> None:
    shoe = await shop.product(price=1000)
    await shop.add(shoe.product_id, 2)
    await shop.catalog.UpdateProduct(cpb.UpdateProductRequest(
        product=cpb.Product(product_id=shoe.product_id, price=money_pb2.Money(currency_code="USD", amount_minor=1500)),
        update_mask={"paths": ["price"]}), metadata=shop.seller)
    cut_off = blind(shop, blind_channel)  # no catalog: the new price can only come from the event

    async def repriced() -> bool:
        cart = await cut_off.get()
        return (cart.lines[0].unit_price.amount_minor, cart.subtotal.amount_minor) == (1500, 3000)
    await eventually(repriced, "the cart shows the new price")


async def test_a_price_changed_by_a_catalog_import_shows_in_the_cart_once_its_event_is_consumed(
        shop: Shop, blind_channel: grpc.aio.Channel) -> None:
    shoe = await shop.product(price=1000)
    await shop.add(shoe.product_id, 2)
    entry = cpb.CatalogEntry(product=cpb.Product(
        sku=shoe.sku, title=shoe.title, category=shoe.category, description=shoe.description,
        attributes=shoe.attributes, price=money_pb2.Money(currency_code="USD", amount_minor=1700)))
    reply = await shop.catalog.ImportProducts(cpb.ImportProductsRequest(entries=[entry]), metadata=shop.seller)
    assert reply.updated_count == 1  # published as one ProductsImported
    cut_off = blind(shop, blind_channel)

    async def repriced() -> bool:
        cart = await cut_off.get()
        return (cart.lines[0].unit_price.amount_minor, cart.subtotal.amount_minor) == (1700, 3400)
    await eventually(repriced, "the cart shows the imported price")


async def test_an_archived_product_shows_as_not_available_and_cannot_be_added(
        shop: Shop, blind_channel: grpc.aio.Channel) -> None:
    shoe = await shop.product()
    await shop.add(shoe.product_id)
    await shop.catalog.ArchiveProduct(cpb.ArchiveProductRequest(product_id=shoe.product_id), metadata=shop.seller)
    cut_off = blind(shop, blind_channel)

    async def unavailable() -> bool:
        cart = await cut_off.get()
        return [(line.product_id, line.unavailable_reason) for line in cart.unavailable_lines] == [
            (shoe.product_id, "PRODUCT_NOT_AVAILABLE")] and not cart.lines
    await eventually(unavailable, "the line is PRODUCT_NOT_AVAILABLE")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.add(shoe.product_id)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(err.value)[0].reason == "PRODUCT_NOT_AVAILABLE"


async def test_an_older_update_arriving_late_does_not_overwrite_a_newer_one(
        shop: Shop, js: JetStreamContext, cart_db: Database) -> None:
    shoe = await shop.product(price=1000)
    await shop.copied(shoe)
    await shop.add(shoe.product_id)
    newer, older = changed(shoe, price=2000, later_seconds=2), changed(shoe, price=1500, later_seconds=1)
    await consumed(cart_db, shop.tenant, await publish(js, shop.tenant, newer))
    await consumed(cart_db, shop.tenant, await publish(js, shop.tenant, older))
    assert (await shop.get()).lines[0].unit_price.amount_minor == 2000


async def test_a_redelivered_event_changes_nothing(shop: Shop, js: JetStreamContext, cart_db: Database) -> None:
    shoe = await shop.product(price=1000)
    await shop.copied(shoe)
    await shop.add(shoe.product_id)
    first = changed(shoe, price=1500, later_seconds=1)
    event_id = await publish(js, shop.tenant, first)
    await consumed(cart_db, shop.tenant, event_id)
    await consumed(cart_db, shop.tenant, await publish(js, shop.tenant, changed(shoe, price=1800, later_seconds=2)))
    skipped = duplicates_skipped()
    await publish(js, shop.tenant, first, event_id=event_id)

    async def skipped_once() -> bool:
        return duplicates_skipped() == skipped + 1
    await eventually(skipped_once, "the redelivered event is recognised and skipped")
    assert (await shop.get()).lines[0].unit_price.amount_minor == 1800


async def test_a_draft_product_does_not_exist_for_shoppers(shop: Shop, cart_db: Database) -> None:
    draft = await shop.product(title="Unreleased", status=cpb.PRODUCT_STATUS_DRAFT)
    await shop.copied(draft)  # the copy knows it: still not for shoppers
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await shop.add(draft.product_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(err.value)[0].reason == "PRODUCT_NOT_FOUND"


async def test_a_product_taken_back_to_draft_shows_nothing_of_itself(
        shop: Shop, blind_channel: grpc.aio.Channel) -> None:
    shoe = await shop.product(title="Trail shoe", attributes={"weight_grams": "850"})
    await shop.add(shoe.product_id, 2)
    reply = await shop.catalog.UpdateProduct(cpb.UpdateProductRequest(
        product=cpb.Product(product_id=shoe.product_id, title="Secret successor", status=cpb.PRODUCT_STATUS_DRAFT),
        update_mask={"paths": ["title", "status"]}), metadata=shop.seller)
    await shop.copied(reply.product)
    cart = await blind(shop, blind_channel).get()
    assert list(cart.lines) == []
    assert list(cart.unavailable_lines) == [pb.CartLine(product_id=shoe.product_id, quantity=2,
                                                        unavailable_reason="PRODUCT_NOT_FOUND")]


async def test_the_copy_never_shows_a_product_of_another_tenant(
        shop: Shop, cart_channel: grpc.aio.Channel, catalog_channel: grpc.aio.Channel, cart_keys: TestKeys,
        cart_db: Database) -> None:
    shoe = await shop.product()
    await shop.copied(shoe)
    await shop.add(shoe.product_id)
    other = await new_shop(cart_channel, catalog_channel, cart_keys, cart_db)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await other.add(shoe.product_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_details(err.value)[0].reason == "PRODUCT_NOT_FOUND"
    assert list((await other.get()).lines) == []
    assert await copied_version(cart_db, other.tenant, shoe.product_id) is None


async def test_each_line_carries_the_unit_weight_of_its_product(shop: Shop) -> None:
    weights = [{"weight_grams": "1200"}, {"weight_grams": " 85 "}, {}, {"weight_grams": "1.5kg"}]
    products = [await shop.product(attributes=attributes) for attributes in weights]
    for product in products:
        await shop.add(product.product_id)
    assert [line.unit_weight_grams for line in (await shop.get()).lines] == [1200, 85, 0, 0]
    reply = await shop.catalog.UpdateProduct(cpb.UpdateProductRequest(
        product=cpb.Product(product_id=products[2].product_id, attributes={"weight_grams": "40"}),
        update_mask={"paths": ["attributes"]}), metadata=shop.seller)
    await shop.copied(reply.product)
    assert [line.unit_weight_grams for line in (await shop.get()).lines] == [1200, 85, 40, 0]
