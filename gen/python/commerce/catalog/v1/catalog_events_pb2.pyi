import datetime

from commerce.catalog.v1 import catalog_pb2 as _catalog_pb2
from commerce.catalog.v1 import inventory_pb2 as _inventory_pb2
from commerce.common.v1 import event_pb2 as _event_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProductCreated(_message.Message):
    __slots__ = ("metadata", "product")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    product: _catalog_pb2.Product
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., product: _Optional[_Union[_catalog_pb2.Product, _Mapping]] = ...) -> None: ...

class ProductUpdated(_message.Message):
    __slots__ = ("metadata", "product", "update_mask")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    product: _catalog_pb2.Product
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., product: _Optional[_Union[_catalog_pb2.Product, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ProductsImported(_message.Message):
    __slots__ = ("metadata", "created", "updated")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    created: _containers.RepeatedCompositeFieldContainer[_catalog_pb2.Product]
    updated: _containers.RepeatedCompositeFieldContainer[_catalog_pb2.Product]
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., created: _Optional[_Iterable[_Union[_catalog_pb2.Product, _Mapping]]] = ..., updated: _Optional[_Iterable[_Union[_catalog_pb2.Product, _Mapping]]] = ...) -> None: ...

class StockReserved(_message.Message):
    __slots__ = ("metadata", "reservation_id", "lines", "expire_time")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    reservation_id: str
    lines: _containers.RepeatedCompositeFieldContainer[_inventory_pb2.ReservationLine]
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., reservation_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[_inventory_pb2.ReservationLine, _Mapping]]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StockReleased(_message.Message):
    __slots__ = ("metadata", "reservation_id", "lines", "state")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    reservation_id: str
    lines: _containers.RepeatedCompositeFieldContainer[_inventory_pb2.ReservationLine]
    state: _inventory_pb2.ReservationState
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., reservation_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[_inventory_pb2.ReservationLine, _Mapping]]] = ..., state: _Optional[_Union[_inventory_pb2.ReservationState, str]] = ...) -> None: ...

class StockCommitted(_message.Message):
    __slots__ = ("metadata", "reservation_id", "lines")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    reservation_id: str
    lines: _containers.RepeatedCompositeFieldContainer[_inventory_pb2.ReservationLine]
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., reservation_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[_inventory_pb2.ReservationLine, _Mapping]]] = ...) -> None: ...

class StockShortfall(_message.Message):
    __slots__ = ("metadata", "reservation_id", "lines", "product_id", "available")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    reservation_id: str
    lines: _containers.RepeatedCompositeFieldContainer[_inventory_pb2.ReservationLine]
    product_id: str
    available: int
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., reservation_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[_inventory_pb2.ReservationLine, _Mapping]]] = ..., product_id: _Optional[str] = ..., available: _Optional[int] = ...) -> None: ...

class LowStock(_message.Message):
    __slots__ = ("metadata", "product_id", "sku", "available", "threshold")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PRODUCT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    product_id: str
    sku: str
    available: int
    threshold: int
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., product_id: _Optional[str] = ..., sku: _Optional[str] = ..., available: _Optional[int] = ..., threshold: _Optional[int] = ...) -> None: ...
