from commerce.common.v1 import event_pb2 as _event_pb2
from commerce.common.v1 import money_pb2 as _money_pb2
from commerce.order.v1 import order_pb2 as _order_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderPlaced(_message.Message):
    __slots__ = ("metadata", "order")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    order: _order_pb2.Order
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class OrderConfirmed(_message.Message):
    __slots__ = ("metadata", "order")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    order: _order_pb2.Order
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class OrderFailed(_message.Message):
    __slots__ = ("metadata", "order")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    order: _order_pb2.Order
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class OrderCancelled(_message.Message):
    __slots__ = ("metadata", "order", "cancelled_by")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_BY_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    order: _order_pb2.Order
    cancelled_by: str
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ..., cancelled_by: _Optional[str] = ...) -> None: ...

class OrderShipped(_message.Message):
    __slots__ = ("metadata", "order")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    order: _order_pb2.Order
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class OrderDelivered(_message.Message):
    __slots__ = ("metadata", "order")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    order: _order_pb2.Order
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class ReturnRequested(_message.Message):
    __slots__ = ("metadata", "order")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    order: _order_pb2.Order
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ...) -> None: ...

class OrderRefunded(_message.Message):
    __slots__ = ("metadata", "order", "payment_id", "amount")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    order: _order_pb2.Order
    payment_id: str
    amount: _money_pb2.Money
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., order: _Optional[_Union[_order_pb2.Order, _Mapping]] = ..., payment_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...
