"""Native gRPC, as a backend integrator calls it: through Envoy and directly to
each service, with the same outcomes."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from commerce.catalog.v1 import catalog_pb2, catalog_pb2_grpc, inventory_pb2, inventory_pb2_grpc
from commerce.common.v1 import money_pb2
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.devmesh.mesh import ROOT, Mesh
from tests.e2e.harness import Shop
from tests.errors import violated_fields
from tests.tokens import TestKeys

Metadata = tuple[tuple[str, str], ...]


@dataclass
class Stubs:
    tenants: tenant_pb2_grpc.TenantServiceStub
    catalog: catalog_pb2_grpc.CatalogServiceStub


@pytest.fixture(scope="session", params=["edge", "direct"])
async def stubs(request: pytest.FixtureRequest, mesh: Mesh) -> AsyncIterator[Stubs]:
    if request.param == "edge":
        tenant_address = catalog_address = mesh.edge_address
    else:
        tenant_address, catalog_address = mesh.address_of("tenant"), mesh.address_of("catalog")
    async with grpc.aio.insecure_channel(tenant_address) as t, grpc.aio.insecure_channel(catalog_address) as c:
        yield Stubs(tenant_pb2_grpc.TenantServiceStub(t), catalog_pb2_grpc.CatalogServiceStub(c))


@pytest.fixture(scope="session")
async def edge(mesh: Mesh) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(mesh.edge_address) as channel:
        yield channel


async def login(stubs: Stubs, tenant_id: str, email: str, password: str) -> Metadata:
    reply = await stubs.tenants.Login(tenant_pb2.LoginRequest(tenant_id=tenant_id, email=email, password=password))
    return (("authorization", f"Bearer {reply.access_token}"),)


def new_product(category: str = "grpc", price_minor: int = 1000, title: str = "A product") -> catalog_pb2.Product:
    return catalog_pb2.Product(sku=f"G-{uuid.uuid4().hex[:10]}", title=title, category=category,
                               price=money_pb2.Money(currency_code="USD", amount_minor=price_minor))


async def create(stubs: Stubs, metadata: Metadata, product: catalog_pb2.Product) -> catalog_pb2.Product:
    reply = await stubs.catalog.CreateProduct(catalog_pb2.CreateProductRequest(product=product), metadata=metadata)
    made: catalog_pb2.Product = reply.product
    return made


async def test_seller_logs_in_creates_and_reads_a_product(stubs: Stubs, shop_a: Shop) -> None:
    seller = await login(stubs, shop_a.tenant_id, shop_a.seller.email, shop_a.seller.password)
    made = await create(stubs, seller, new_product(title="Teapot"))
    got = await stubs.catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=made.product_id),
                                         metadata=shop_a.customer.metadata)
    assert got.product.title == "Teapot" and got.product.sku == made.sku


async def test_filtered_listing_pages_through_every_match_exactly_once(stubs: Stubs, shop_a: Shop) -> None:
    category = f"gpaging-{uuid.uuid4().hex[:6]}"
    made = {(await create(stubs, shop_a.seller.metadata, new_product(category, price))).sku: price
            for price in (100, 300, 400, 500, 600, 900)}
    seen: list[str] = []
    token = ""
    while True:
        page = await stubs.catalog.ListProducts(catalog_pb2.ListProductsRequest(
            category=category, min_price_minor=300, max_price_minor=600, page_size=2, page_token=token),
            metadata=shop_a.customer.metadata)
        seen += [p.sku for p in page.products]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(sku for sku, price in made.items() if 300 <= price <= 600)
    assert len(seen) == len(set(seen)) == 4


async def test_unknown_product_is_not_found(stubs: Stubs, shop_a: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.catalog.GetProduct(catalog_pb2.GetProductRequest(product_id="prd_01JZZZZZZZZZZZZZZZZZZZZZZZ"),
                                       metadata=shop_a.seller.metadata)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_an_invalid_field_is_invalid_argument_naming_the_field(stubs: Stubs, shop_a: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(stubs, shop_a.seller.metadata, new_product(price_minor=-5))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any("price" in field for field in violated_fields(caught.value))


async def test_no_token_is_unauthenticated(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(stubs, (), new_product())
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("token", ["garbage", TestKeys().mint(tenant="shop-a", roles=["seller"])],
                         ids=["not-a-jwt", "signed-by-an-unknown-key"])
async def test_an_invalid_token_is_unauthenticated(stubs: Stubs, token: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.catalog.ListProducts(catalog_pb2.ListProductsRequest(),
                                         metadata=(("authorization", f"Bearer {token}"),))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_customer_cannot_create_products(stubs: Stubs, shop_a: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await create(stubs, shop_a.customer.metadata, new_product())
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_another_tenant_never_sees_a_tenants_products(stubs: Stubs, shop_a: Shop, shop_b: Shop) -> None:
    secret = await create(stubs, shop_a.seller.metadata, new_product(category="grpc-a-only"))
    listed = await stubs.catalog.ListProducts(catalog_pb2.ListProductsRequest(category="grpc-a-only", page_size=100),
                                              metadata=shop_b.seller.metadata)
    assert list(listed.products) == []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stubs.catalog.GetProduct(catalog_pb2.GetProductRequest(product_id=secret.product_id),
                                       metadata=shop_b.seller.metadata)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_internal_services_are_not_reachable_through_the_edge(edge: grpc.aio.Channel, shop_a: Shop) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await inventory_pb2_grpc.InventoryServiceStub(edge).ReserveStock(
            inventory_pb2.ReserveStockRequest(), metadata=shop_a.seller.metadata)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("service", ["", "commerce.tenant.v1.TenantService", "commerce.catalog.v1.CatalogService"])
async def test_health_through_the_edge_is_serving(edge: grpc.aio.Channel, service: str) -> None:
    reply = await health_pb2_grpc.HealthStub(edge).Check(health_pb2.HealthCheckRequest(service=service))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def grpcurl(*args: str) -> str:
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "grpcurl"), "-plaintext", *args],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_grpcurl_lists_every_service_through_the_edge(mesh: Mesh) -> None:
    listed = grpcurl(mesh.edge_address, "list").split()
    assert listed == ["commerce.cart.v1.CartService", "commerce.catalog.v1.CatalogService",
                      "commerce.order.v1.OrderService", "commerce.payment.v1.PaymentService",
                      "commerce.tenant.v1.TenantService", "grpc.health.v1.Health",
                      "grpc.reflection.v1alpha.ServerReflection"]


def test_grpcurl_describes_a_service_through_the_edge(mesh: Mesh) -> None:
    described = grpcurl(mesh.edge_address, "describe", "commerce.catalog.v1.CatalogService")
    assert "rpc ListProducts" in described and "rpc CreateProduct" in described
