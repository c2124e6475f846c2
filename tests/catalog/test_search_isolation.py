"""Search results, facets and cached answers of one tenant never hold another's
products: two tenants with the same words, categories and attributes, on the same
catalog server and database."""

from __future__ import annotations

import grpc
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc

from tests.catalog.conftest import Shop, product


async def _stock_shop(shop: Shop, count: int, prefix: str) -> set[str]:
    entries = [pb.CatalogEntry(product=product(f"{prefix}-{n}", title=f"Shared lantern {n}", category="lights",
                                               price=1000 * (n + 1), attributes={"color": "red"}), on_hand=3)
               for n in range(count)]
    reply = await shop.stub.ImportProducts(pb.ImportProductsRequest(entries=entries), metadata=shop.seller)
    return {r.product_id for r in reply.results}


async def test_searches_and_facets_of_a_tenant_hold_only_its_own_products(
        shop: Shop, other_shop: Shop, channel: grpc.aio.Channel) -> None:
    mine = await _stock_shop(shop, 3, "A")
    theirs = await _stock_shop(other_shop, 5, "B")
    requests = [
        pb.ListProductsRequest(query="lantern", facets=["category", "attributes.color", "price"]),
        pb.ListProductsRequest(query="lanter", facets=["category"]),  # widened by the vocabulary
        pb.ListProductsRequest(filter='category = "lights" AND attributes.color = "red"', facets=["category"]),
        pb.ListProductsRequest(order_by="price desc", facets=["attributes.color"]),
    ]
    for own, ids, foreign in ((shop, mine, theirs), (other_shop, theirs, mine)):
        for request in requests:
            for _ in range(2):  # the second answer comes from the cache
                reply = await own.stub.ListProducts(request, metadata=own.customer)
                assert {p.product_id for p in reply.products} == ids and not ids & foreign, request
                assert reply.total_size == len(ids)
                for facet in reply.facets:
                    assert sum(v.count for v in facet.values) == len(ids), facet
    # A's export holds A's products only; B's skus are not A's (an import of them creates).
    exported = set()
    async for batch in catalog_pb2_grpc.CatalogServiceStub(channel).ExportProducts(
            pb.ExportProductsRequest(), metadata=shop.seller):
        exported |= {e.product.product_id for e in batch.entries}
    assert exported == mine


async def test_an_import_in_one_tenant_never_updates_another_tenants_product_with_the_same_sku(
        shop: Shop, other_shop: Shop) -> None:
    mine = await _stock_shop(shop, 2, "SAME")
    reply = await other_shop.stub.ImportProducts(pb.ImportProductsRequest(entries=[pb.CatalogEntry(
        product=product("SAME-0", title="Theirs"), on_hand=1)]), metadata=other_shop.seller)
    assert reply.results[0].outcome == pb.IMPORT_OUTCOME_CREATED and reply.results[0].product_id not in mine
    listed = await shop.stub.ListProducts(pb.ListProductsRequest(query="theirs"), metadata=shop.customer)
    assert list(listed.products) == []
