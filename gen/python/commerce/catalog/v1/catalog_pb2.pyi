import datetime

from commerce.access.v1 import access_pb2 as _access_pb2
from commerce.common.v1 import money_pb2 as _money_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProductStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRODUCT_STATUS_UNSPECIFIED: _ClassVar[ProductStatus]
    PRODUCT_STATUS_DRAFT: _ClassVar[ProductStatus]
    PRODUCT_STATUS_ACTIVE: _ClassVar[ProductStatus]
    PRODUCT_STATUS_ARCHIVED: _ClassVar[ProductStatus]

class ImportOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPORT_OUTCOME_UNSPECIFIED: _ClassVar[ImportOutcome]
    IMPORT_OUTCOME_CREATED: _ClassVar[ImportOutcome]
    IMPORT_OUTCOME_UPDATED: _ClassVar[ImportOutcome]
    IMPORT_OUTCOME_UNCHANGED: _ClassVar[ImportOutcome]
    IMPORT_OUTCOME_FAILED: _ClassVar[ImportOutcome]
PRODUCT_STATUS_UNSPECIFIED: ProductStatus
PRODUCT_STATUS_DRAFT: ProductStatus
PRODUCT_STATUS_ACTIVE: ProductStatus
PRODUCT_STATUS_ARCHIVED: ProductStatus
IMPORT_OUTCOME_UNSPECIFIED: ImportOutcome
IMPORT_OUTCOME_CREATED: ImportOutcome
IMPORT_OUTCOME_UPDATED: ImportOutcome
IMPORT_OUTCOME_UNCHANGED: ImportOutcome
IMPORT_OUTCOME_FAILED: ImportOutcome

class Product(_message.Message):
    __slots__ = ("name", "product_id", "sku", "title", "description", "category", "attributes", "price", "status", "create_time", "update_time")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    product_id: str
    sku: str
    title: str
    description: str
    category: str
    attributes: _containers.ScalarMap[str, str]
    price: _money_pb2.Money
    status: ProductStatus
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., product_id: _Optional[str] = ..., sku: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., category: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., status: _Optional[_Union[ProductStatus, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StockLevel(_message.Message):
    __slots__ = ("product_id", "on_hand", "reserved", "available", "update_time")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    on_hand: int
    reserved: int
    available: int
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, product_id: _Optional[str] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., available: _Optional[int] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateProductRequest(_message.Message):
    __slots__ = ("product", "request_id")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    product: Product
    request_id: str
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class GetProductRequest(_message.Message):
    __slots__ = ("product_id",)
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    def __init__(self, product_id: _Optional[str] = ...) -> None: ...

class GetProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class ListProductsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "query", "category", "min_price_minor", "max_price_minor", "status", "filter", "order_by", "facets", "price_buckets")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    FACETS_FIELD_NUMBER: _ClassVar[int]
    PRICE_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    query: str
    category: str
    min_price_minor: int
    max_price_minor: int
    status: ProductStatus
    filter: str
    order_by: str
    facets: _containers.RepeatedScalarFieldContainer[str]
    price_buckets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., query: _Optional[str] = ..., category: _Optional[str] = ..., min_price_minor: _Optional[int] = ..., max_price_minor: _Optional[int] = ..., status: _Optional[_Union[ProductStatus, str]] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ..., facets: _Optional[_Iterable[str]] = ..., price_buckets: _Optional[_Iterable[int]] = ...) -> None: ...

class ListProductsResponse(_message.Message):
    __slots__ = ("products", "next_page_token", "facets", "total_size", "counts_estimated")
    PRODUCTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    FACETS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_ESTIMATED_FIELD_NUMBER: _ClassVar[int]
    products: _containers.RepeatedCompositeFieldContainer[Product]
    next_page_token: str
    facets: _containers.RepeatedCompositeFieldContainer[Facet]
    total_size: int
    counts_estimated: bool
    def __init__(self, products: _Optional[_Iterable[_Union[Product, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., facets: _Optional[_Iterable[_Union[Facet, _Mapping]]] = ..., total_size: _Optional[int] = ..., counts_estimated: _Optional[bool] = ...) -> None: ...

class Facet(_message.Message):
    __slots__ = ("field", "values")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    field: str
    values: _containers.RepeatedCompositeFieldContainer[FacetValue]
    def __init__(self, field: _Optional[str] = ..., values: _Optional[_Iterable[_Union[FacetValue, _Mapping]]] = ...) -> None: ...

class FacetValue(_message.Message):
    __slots__ = ("value", "count", "filter", "min_price_minor", "max_price_minor")
    VALUE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MIN_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    MAX_PRICE_MINOR_FIELD_NUMBER: _ClassVar[int]
    value: str
    count: int
    filter: str
    min_price_minor: int
    max_price_minor: int
    def __init__(self, value: _Optional[str] = ..., count: _Optional[int] = ..., filter: _Optional[str] = ..., min_price_minor: _Optional[int] = ..., max_price_minor: _Optional[int] = ...) -> None: ...

class UpdateProductRequest(_message.Message):
    __slots__ = ("product", "update_mask", "request_id")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    product: Product
    update_mask: _field_mask_pb2.FieldMask
    request_id: str
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class ArchiveProductRequest(_message.Message):
    __slots__ = ("product_id", "request_id")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    request_id: str
    def __init__(self, product_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ArchiveProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class SetStockRequest(_message.Message):
    __slots__ = ("product_id", "on_hand", "request_id")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    on_hand: int
    request_id: str
    def __init__(self, product_id: _Optional[str] = ..., on_hand: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetStockResponse(_message.Message):
    __slots__ = ("stock",)
    STOCK_FIELD_NUMBER: _ClassVar[int]
    stock: StockLevel
    def __init__(self, stock: _Optional[_Union[StockLevel, _Mapping]] = ...) -> None: ...

class AdjustStockRequest(_message.Message):
    __slots__ = ("product_id", "delta", "request_id")
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    delta: int
    request_id: str
    def __init__(self, product_id: _Optional[str] = ..., delta: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class AdjustStockResponse(_message.Message):
    __slots__ = ("stock",)
    STOCK_FIELD_NUMBER: _ClassVar[int]
    stock: StockLevel
    def __init__(self, stock: _Optional[_Union[StockLevel, _Mapping]] = ...) -> None: ...

class GetStockRequest(_message.Message):
    __slots__ = ("product_id",)
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    product_id: str
    def __init__(self, product_id: _Optional[str] = ...) -> None: ...

class GetStockResponse(_message.Message):
    __slots__ = ("stock",)
    STOCK_FIELD_NUMBER: _ClassVar[int]
    stock: StockLevel
    def __init__(self, stock: _Optional[_Union[StockLevel, _Mapping]] = ...) -> None: ...

class CatalogEntry(_message.Message):
    __slots__ = ("product", "on_hand")
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    product: Product
    on_hand: int
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ..., on_hand: _Optional[int] = ...) -> None: ...

class ImportProductsRequest(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[CatalogEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[CatalogEntry, _Mapping]]] = ...) -> None: ...

class ImportProductsResponse(_message.Message):
    __slots__ = ("results", "created_count", "updated_count", "unchanged_count", "failed_count")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CREATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ImportResult]
    created_count: int
    updated_count: int
    unchanged_count: int
    failed_count: int
    def __init__(self, results: _Optional[_Iterable[_Union[ImportResult, _Mapping]]] = ..., created_count: _Optional[int] = ..., updated_count: _Optional[int] = ..., unchanged_count: _Optional[int] = ..., failed_count: _Optional[int] = ...) -> None: ...

class ImportResult(_message.Message):
    __slots__ = ("index", "sku", "product_id", "outcome", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    sku: str
    product_id: str
    outcome: ImportOutcome
    error: _status_pb2.Status
    def __init__(self, index: _Optional[int] = ..., sku: _Optional[str] = ..., product_id: _Optional[str] = ..., outcome: _Optional[_Union[ImportOutcome, str]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class ExportProductsRequest(_message.Message):
    __slots__ = ("batch_size",)
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    batch_size: int
    def __init__(self, batch_size: _Optional[int] = ...) -> None: ...

class ExportProductsResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[CatalogEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[CatalogEntry, _Mapping]]] = ...) -> None: ...

class SearchSettings(_message.Message):
    __slots__ = ("name", "language", "available_languages", "reindexing", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    REINDEXING_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    language: str
    available_languages: _containers.RepeatedScalarFieldContainer[str]
    reindexing: bool
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., language: _Optional[str] = ..., available_languages: _Optional[_Iterable[str]] = ..., reindexing: _Optional[bool] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSearchSettingsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSearchSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: SearchSettings
    def __init__(self, settings: _Optional[_Union[SearchSettings, _Mapping]] = ...) -> None: ...

class UpdateSearchSettingsRequest(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: SearchSettings
    def __init__(self, settings: _Optional[_Union[SearchSettings, _Mapping]] = ...) -> None: ...

class UpdateSearchSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: SearchSettings
    def __init__(self, settings: _Optional[_Union[SearchSettings, _Mapping]] = ...) -> None: ...
