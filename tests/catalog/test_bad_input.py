"""Bad input is INVALID_ARGUMENT naming the field (BadRequest violation), and nothing is written."""

from __future__ import annotations

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.common.v1 import money_pb2
from google.protobuf import field_mask_pb2

from services.runtime.db import Database
from tests.catalog.conftest import Shop, product
from tests.catalog.harness import count_rows
from tests.errors import error_details, violated_fields


def _with(**changes: object) -> pb.Product:
    base = product("GOOD-1")
    for name, value in changes.items():
        if name == "price":
            base.ClearField("price")
            if value is not None:
                base.price.CopyFrom(value)  # type: ignore[arg-type]
        elif name == "attributes":
            base.attributes.update(value)  # type: ignore[call-overload]
        else:
            setattr(base, name, value)
    return base


BAD_PRODUCTS = [
    (_with(price=money_pb2.Money(currency_code="USD", amount_minor=-1)), "product.price.amount_minor"),
    (_with(price=money_pb2.Money(currency_code="USD", amount_minor=10**12 + 1)), "product.price.amount_minor"),
    (_with(price=money_pb2.Money(currency_code="usd", amount_minor=100)), "product.price.currency_code"),
    (_with(price=money_pb2.Money(currency_code="US", amount_minor=100)), "product.price.currency_code"),
    (_with(price=money_pb2.Money(currency_code="", amount_minor=100)), "product.price.currency_code"),
    (_with(price=money_pb2.Money(currency_code="ABC", amount_minor=100)), "product.price.currency_code"),
    (_with(price=money_pb2.Money(currency_code="XXX", amount_minor=100)), "product.price.currency_code"),
    (_with(price=None), "product.price"),
    (_with(sku=""), "product.sku"),
    (_with(sku="has space"), "product.sku"),
    (_with(sku="S" * 65), "product.sku"),
    (_with(sku="ünïcode"), "product.sku"),
    (_with(title=""), "product.title"),
    (_with(title="   "), "product.title"),
    (_with(title="t" * 10_000), "product.title"),
    (_with(title="bell\x07"), "product.title"),
    (_with(title="line\nbreak"), "product.title"),
    (_with(title="nul\x00byte"), "product.title"),
    (_with(description="d" * 5001), "product.description"),
    (_with(description="escape \x1b[31m red"), "product.description"),
    (_with(category=""), "product.category"),
    (_with(category="c" * 65), "product.category"),
    (_with(category="tab\tcat"), "product.category"),
    (_with(attributes={f"k{i}": "v" for i in range(51)}), "product.attributes"),
    (_with(attributes={"": "v"}), "product.attributes"),
    (_with(attributes={"k" * 65: "v"}), "product.attributes"),
    (_with(attributes={"k": "v" * 501}), "product.attributes"),
    (_with(attributes={"k": "v\x00"}), "product.attributes"),
    (_with(status=7), "product.status"),
]


@pytest.mark.parametrize(("bad", "field"), BAD_PRODUCTS)
async def test_bad_product_on_create_names_the_field_and_writes_nothing(
        shop: Shop, catalog_db: Database, bad: pb.Product, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.CreateProduct(pb.CreateProductRequest(product=bad), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]
    assert error_details(caught.value)[0].reason == "INVALID_ARGUMENT"
    assert await count_rows(catalog_db, shop.tenant, "products") == 0
    assert await count_rows(catalog_db, shop.tenant, "idempotency_keys") == 0


async def test_every_bad_field_is_named_at_once(shop: Shop) -> None:
    bad = pb.Product(sku="", title="", category="", price=money_pb2.Money(currency_code="x", amount_minor=-1))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.CreateProduct(pb.CreateProductRequest(product=bad), metadata=shop.seller)
    assert sorted(violated_fields(caught.value)) == sorted([
        "product.sku", "product.title", "product.category", "product.price.currency_code",
        "product.price.amount_minor"])


async def test_create_without_product_names_it(shop: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.CreateProduct(pb.CreateProductRequest(), metadata=shop.seller)
    assert violated_fields(caught.value) == ["product"]


UPDATE_FIELDS = {"product.price.amount_minor": "price", "product.price.currency_code": "price",
                 "product.price": "price", "product.sku": "sku", "product.title": "title",
                 "product.description": "description", "product.category": "category",
                 "product.attributes": "attributes", "product.status": "status"}


@pytest.mark.parametrize(("bad", "field"), BAD_PRODUCTS)
async def test_bad_masked_field_on_update_names_it_and_changes_nothing(
        shop: Shop, bad: pb.Product, field: str) -> None:
    created = await shop.create("GOOD-1")
    bad.product_id = created.product_id
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.UpdateProduct(pb.UpdateProductRequest(
            product=bad, update_mask=field_mask_pb2.FieldMask(paths=[UPDATE_FIELDS[field]])), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == [field]
    after = await shop.stub.GetProduct(pb.GetProductRequest(product_id=created.product_id), metadata=shop.seller)
    assert after.product == created


@pytest.mark.parametrize("paths", [[], ["colour"], ["title", "product_id"], ["create_time"], ["price.amount_minor"],
                                   ["*"]])
async def test_empty_or_unknown_update_mask_is_invalid_argument(shop: Shop, paths: list[str]) -> None:
    created = await shop.create()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.UpdateProduct(pb.UpdateProductRequest(
            product=pb.Product(product_id=created.product_id, title="Changed"),
            update_mask=field_mask_pb2.FieldMask(paths=paths)), metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["update_mask"]
    after = await shop.stub.GetProduct(pb.GetProductRequest(product_id=created.product_id), metadata=shop.seller)
    assert after.product.title == created.title


async def test_missing_ids_are_named(shop: Shop) -> None:
    calls = {
        "product_id": shop.stub.GetProduct(pb.GetProductRequest(), metadata=shop.seller),
        "product.product_id": shop.stub.UpdateProduct(pb.UpdateProductRequest(
            product=pb.Product(title="x"), update_mask=field_mask_pb2.FieldMask(paths=["title"])),
            metadata=shop.seller),
    }
    for field, call in calls.items():
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violated_fields(caught.value) == [field]


SQLISH = ["Robert'); DROP TABLE products;--", "' OR '1'='1", "%'; SELECT pg_sleep(10); --", "\\x00\\'", "$$;--"]


async def test_sql_looking_text_is_stored_verbatim_and_harmless(shop: Shop) -> None:
    made = {}
    for i, text_ in enumerate(SQLISH):
        created = await shop.create(f"SQL-{i}", title=text_, description=text_, category=text_[:64])
        made[created.product_id] = text_
    for product_id, text_ in made.items():
        read = (await shop.stub.GetProduct(pb.GetProductRequest(product_id=product_id), metadata=shop.customer)).product
        assert (read.title, read.description) == (text_, text_)
        found = await shop.stub.ListProducts(pb.ListProductsRequest(query=text_, category=text_[:64]),
                                             metadata=shop.customer)
        # found by the words it holds; a text without words ("$$;--") finds nothing (never everything)
        assert [p.product_id for p in found.products] == ([product_id] if any(c.isalnum() for c in text_) else [])
    everything = await shop.stub.ListProducts(pb.ListProductsRequest(), metadata=shop.customer)
    assert len(everything.products) == len(SQLISH)


async def test_body_that_is_not_utf8_is_invalid_argument_and_writes_nothing(
        shop: Shop, channel: grpc.aio.Channel, catalog_db: Database) -> None:
    raw_create = channel.unary_unary("/commerce.catalog.v1.CatalogService/CreateProduct",
                                     request_serializer=lambda b: b, response_deserializer=lambda b: b)
    body = product("UTF8-1").SerializeToString().replace(b"Trail shoe", b"Trail \xff\xfe\xfd\xfc")
    assert len(body) < 128
    with pytest.raises(grpc.aio.AioRpcError) as caught:  # field 1 (product), length-delimited
        await raw_create(b"\x0a" + bytes([len(body)]) + body, metadata=shop.seller)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violated_fields(caught.value) == ["request"]
    assert await count_rows(catalog_db, shop.tenant, "products") == 0
