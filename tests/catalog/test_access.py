"""Who may call what, and tenants never seeing each other's products."""

from __future__ import annotations

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2 as pb
from google.protobuf import field_mask_pb2

from services.runtime.db import Database
from tests.catalog.conftest import Shop, product
from tests.catalog.harness import count_rows
from tests.tokens import TestKeys


async def test_customer_and_guest_may_not_create_products(shop: Shop, catalog_db: Database) -> None:
    for role in ("customer", "guest"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await shop.stub.CreateProduct(pb.CreateProductRequest(product=product("NOPE")), metadata=shop.as_(role))
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert await count_rows(catalog_db, shop.tenant, "products") == 0


async def test_customer_may_not_change_products_or_stock(shop: Shop) -> None:
    created = await shop.create()
    calls = [
        shop.stub.UpdateProduct(pb.UpdateProductRequest(
            product=pb.Product(product_id=created.product_id, title="Hacked"),
            update_mask=field_mask_pb2.FieldMask(paths=["title"])), metadata=shop.customer),
        shop.stub.ArchiveProduct(pb.ArchiveProductRequest(product_id=created.product_id), metadata=shop.customer),
        shop.stub.SetStock(pb.SetStockRequest(product_id=created.product_id, on_hand=5), metadata=shop.customer),
        shop.stub.AdjustStock(pb.AdjustStockRequest(product_id=created.product_id, delta=5), metadata=shop.customer),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    read = await shop.stub.GetProduct(pb.GetProductRequest(product_id=created.product_id), metadata=shop.seller)
    assert read.product == created


async def test_owner_and_admin_may_create(shop: Shop) -> None:
    await shop.stub.CreateProduct(pb.CreateProductRequest(product=product("BY-OWNER")), metadata=shop.as_("owner"))
    admin = (*shop.keys.metadata(tenant="platform", roles=["admin"]), ("x-tenant-id", shop.tenant))
    await shop.stub.CreateProduct(pb.CreateProductRequest(product=product("BY-ADMIN")), metadata=admin)
    listed = await shop.stub.ListProducts(pb.ListProductsRequest(), metadata=shop.customer)
    assert sorted(p.sku for p in listed.products) == ["BY-ADMIN", "BY-OWNER"]


async def test_no_token_is_unauthenticated(shop: Shop) -> None:
    for call in (shop.stub.ListProducts(pb.ListProductsRequest()),
                 shop.stub.CreateProduct(pb.CreateProductRequest(product=product("ANON")))):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_token_signed_by_another_key_is_unauthenticated(shop: Shop) -> None:
    stranger = TestKeys()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.ListProducts(pb.ListProductsRequest(),
                                     metadata=stranger.metadata(tenant=shop.tenant, roles=["seller"]))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_tenant_b_never_sees_tenant_a_products(shop: Shop, other_shop: Shop) -> None:
    created = await shop.create("SECRET-1", title="Secret thing")
    # warm the read cache of tenant A's product first: it is keyed by tenant too
    await shop.stub.GetProduct(pb.GetProductRequest(product_id=created.product_id), metadata=shop.customer)

    for role in ("seller", "customer"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await other_shop.stub.GetProduct(pb.GetProductRequest(product_id=created.product_id),
                                             metadata=other_shop.as_(role))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await other_shop.stub.ListProducts(pb.ListProductsRequest(query="secret"),
                                                    metadata=other_shop.as_(role))
        assert list(listed.products) == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await other_shop.stub.SetStock(pb.SetStockRequest(product_id=created.product_id, on_hand=3),
                                       metadata=other_shop.seller)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    # tenant B may use the same sku: skus are unique per tenant
    await other_shop.create("SECRET-1")


async def test_token_of_an_unprovisioned_tenant_finds_nothing(shop: Shop) -> None:
    ghost = shop.keys.metadata(tenant="ghost-tenant", roles=["seller"])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await shop.stub.ListProducts(pb.ListProductsRequest(), metadata=ghost)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
