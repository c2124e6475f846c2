"""CatalogService over gRPC: request message in -> use case -> response message out.
Who may call each method is declared in the proto and enforced by the interceptor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc
from commerce.catalog.v1 import catalog_pb2 as pb
from commerce.catalog.v1 import catalog_pb2_grpc

from services.catalog.catalog import Catalog, Reply
from services.catalog.convert import (
    catalog_entry,
    catalog_entry_pb,
    import_outcome_pb,
    list_request,
    list_response,
    product_input,
    product_pb,
    search_settings_pb,
    stock_pb,
)
from services.catalog.domain.ids import requested_product_id
from services.catalog.domain.imports import Outcome
from services.catalog.domain.product import Product, new_product, update_paths
from services.catalog.domain.stock import StockLevel
from services.catalog.imports import Importer, Result
from services.catalog.languages import SearchLanguages
from services.catalog.searches import ProductSearch
from services.runtime.context import require_tenant
from services.runtime.errors import InvalidArgument
from services.runtime.idempotency import key_for
from services.runtime.interceptors import status_for_caller

SERVICE = pb.DESCRIPTOR.services_by_name["CatalogService"]
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

CREATED: Reply[Product, pb.CreateProductResponse] = Reply(
    pb.CreateProductResponse, lambda p: pb.CreateProductResponse(product=product_pb(p)))
UPDATED: Reply[Product, pb.UpdateProductResponse] = Reply(
    pb.UpdateProductResponse, lambda p: pb.UpdateProductResponse(product=product_pb(p)))
ARCHIVED: Reply[Product, pb.ArchiveProductResponse] = Reply(
    pb.ArchiveProductResponse, lambda p: pb.ArchiveProductResponse(product=product_pb(p)))
STOCK_SET: Reply[StockLevel, pb.SetStockResponse] = Reply(
    pb.SetStockResponse, lambda s: pb.SetStockResponse(stock=stock_pb(s)))
STOCK_ADJUSTED: Reply[StockLevel, pb.AdjustStockResponse] = Reply(
    pb.AdjustStockResponse, lambda s: pb.AdjustStockResponse(stock=stock_pb(s)))


def _method(name: str) -> str:
    return f"{SERVICE.full_name}/{name}"


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, catalog: Catalog, search: ProductSearch, importer: Importer,
                 languages: SearchLanguages) -> None:
        self._catalog = catalog
        self._search = search
        self._importer = importer
        self._languages = languages

    async def GetProduct(self, request: pb.GetProductRequest, context: Context) -> pb.GetProductResponse:
        caller, tenant = require_tenant()
        found = await self._catalog.get_product(caller, tenant, requested_product_id(request.product_id))
        return pb.GetProductResponse(product=product_pb(found))

    async def ListProducts(self, request: pb.ListProductsRequest, context: Context) -> pb.ListProductsResponse:
        caller, tenant = require_tenant()
        return list_response(await self._search.list_products(caller, tenant, list_request(request)))

    async def ImportProducts(self, request: pb.ImportProductsRequest,
                             context: Context) -> pb.ImportProductsResponse:
        _, tenant = require_tenant()
        results = await self._importer.import_products(tenant, [catalog_entry(e) for e in request.entries])
        reply = pb.ImportProductsResponse(results=[_result_pb(context, r) for r in results])
        for result in results:
            if result.outcome is Outcome.CREATED:
                reply.created_count += 1
            elif result.outcome is Outcome.UPDATED:
                reply.updated_count += 1
            elif result.outcome is Outcome.UNCHANGED:
                reply.unchanged_count += 1
            else:
                reply.failed_count += 1
        return reply

    async def ExportProducts(self, request: pb.ExportProductsRequest,
                             context: Context) -> AsyncIterator[pb.ExportProductsResponse]:
        _, tenant = require_tenant()
        async for batch in self._importer.export(tenant, request.batch_size):
            yield pb.ExportProductsResponse(entries=[catalog_entry_pb(p, on_hand) for p, on_hand in batch])

    async def GetSearchSettings(self, request: pb.GetSearchSettingsRequest,
                                context: Context) -> pb.GetSearchSettingsResponse:
        _, tenant = require_tenant()
        return pb.GetSearchSettingsResponse(settings=search_settings_pb(*await self._languages.get(tenant)))

    async def UpdateSearchSettings(self, request: pb.UpdateSearchSettingsRequest,
                                   context: Context) -> pb.UpdateSearchSettingsResponse:
        _, tenant = require_tenant()
        if not request.settings.language:
            raise InvalidArgument.field("settings.language", "is required")
        settings = await self._languages.update(tenant, request.settings.language)
        return pb.UpdateSearchSettingsResponse(settings=search_settings_pb(*settings))

    async def CreateProduct(self, request: pb.CreateProductRequest, context: Context) -> pb.CreateProductResponse:
        _, tenant = require_tenant()
        if not request.HasField("product"):
            raise InvalidArgument.field("product", "is required")
        fields = new_product(product_input(request.product))
        key = key_for(_method("CreateProduct"), request)
        return await self._catalog.create_product(tenant, fields, key, CREATED)

    async def UpdateProduct(self, request: pb.UpdateProductRequest, context: Context) -> pb.UpdateProductResponse:
        _, tenant = require_tenant()
        product_id = requested_product_id(request.product.product_id, "product.product_id")
        paths = update_paths(list(request.update_mask.paths))
        key = key_for(_method("UpdateProduct"), request)
        return await self._catalog.update_product(tenant, product_id, product_input(request.product), paths, key,
                                                  UPDATED)

    async def ArchiveProduct(self, request: pb.ArchiveProductRequest, context: Context) -> pb.ArchiveProductResponse:
        _, tenant = require_tenant()
        product_id = requested_product_id(request.product_id)
        return await self._catalog.archive_product(tenant, product_id, key_for(_method("ArchiveProduct"), request),
                                                   ARCHIVED)

    async def SetStock(self, request: pb.SetStockRequest, context: Context) -> pb.SetStockResponse:
        _, tenant = require_tenant()
        product_id = requested_product_id(request.product_id)
        return await self._catalog.set_stock(tenant, product_id, request.on_hand,
                                             key_for(_method("SetStock"), request), STOCK_SET)

    async def AdjustStock(self, request: pb.AdjustStockRequest, context: Context) -> pb.AdjustStockResponse:
        _, tenant = require_tenant()
        product_id = requested_product_id(request.product_id)
        return await self._catalog.adjust_stock(tenant, product_id, request.delta,
                                                key_for(_method("AdjustStock"), request), STOCK_ADJUSTED)

    async def GetStock(self, request: pb.GetStockRequest, context: Context) -> pb.GetStockResponse:
        caller, tenant = require_tenant()
        level = await self._catalog.get_stock(caller, tenant, requested_product_id(request.product_id))
        return pb.GetStockResponse(stock=stock_pb(level))



def _result_pb(context: Context, result: Result) -> pb.ImportResult:
    message = pb.ImportResult(index=result.index, sku=result.sku, product_id=result.product_id,
                              outcome=import_outcome_pb(result.outcome))
    if result.error is not None:
        message.error.CopyFrom(status_for_caller(context, result.error))
    return message
