from commerce.common.v1 import event_pb2 as _event_pb2
from commerce.tenant.v1 import tenant_pb2 as _tenant_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TenantCreated(_message.Message):
    __slots__ = ("metadata", "tenant")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    tenant: _tenant_pb2.Tenant
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., tenant: _Optional[_Union[_tenant_pb2.Tenant, _Mapping]] = ...) -> None: ...

class TenantSuspended(_message.Message):
    __slots__ = ("metadata", "tenant")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    tenant: _tenant_pb2.Tenant
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., tenant: _Optional[_Union[_tenant_pb2.Tenant, _Mapping]] = ...) -> None: ...

class TenantResumed(_message.Message):
    __slots__ = ("metadata", "tenant")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    tenant: _tenant_pb2.Tenant
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., tenant: _Optional[_Union[_tenant_pb2.Tenant, _Mapping]] = ...) -> None: ...

class UserRegistered(_message.Message):
    __slots__ = ("metadata", "user")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    user: _tenant_pb2.User
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., user: _Optional[_Union[_tenant_pb2.User, _Mapping]] = ...) -> None: ...

class UserDeleted(_message.Message):
    __slots__ = ("metadata", "user_id", "tenant_id")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    metadata: _event_pb2.EventMetadata
    user_id: str
    tenant_id: str
    def __init__(self, metadata: _Optional[_Union[_event_pb2.EventMetadata, _Mapping]] = ..., user_id: _Optional[str] = ..., tenant_id: _Optional[str] = ...) -> None: ...
