from commerce.access.v1 import access_pb2 as _access_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ProvisionTenantRequest(_message.Message):
    __slots__ = ("tenant_id", "currency_code")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    currency_code: str
    def __init__(self, tenant_id: _Optional[str] = ..., currency_code: _Optional[str] = ...) -> None: ...

class ProvisionTenantResponse(_message.Message):
    __slots__ = ("schema", "revision")
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    schema: str
    revision: str
    def __init__(self, schema: _Optional[str] = ..., revision: _Optional[str] = ...) -> None: ...
