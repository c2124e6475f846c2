"""Domain errors become gRPC status with google.rpc details (pure, no servers)."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from services.runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from services.runtime.interceptors import status_for

M = TypeVar("M", bound=Message)


def _find(status: status_pb2.Status, kind: type[M]) -> M | None:
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            return message
    return None


def _unpack(status: status_pb2.Status, kind: type[M]) -> M:
    found = _find(status, kind)
    assert found is not None, f"no {kind.DESCRIPTOR.full_name} in the status details"
    return found


def test_invalid_argument_names_the_field_in_bad_request() -> None:
    status = status_for(InvalidArgument.field("product.price.amount_minor", "must not be negative"))
    assert status.code == code_pb2.INVALID_ARGUMENT
    bad = _unpack(status, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("product.price.amount_minor", "must not be negative")]
    assert "product.price.amount_minor" in status.message


def test_reason_travels_in_error_info() -> None:
    status = status_for(FailedPrecondition("only 2 left", reason="OUT_OF_STOCK", metadata={"product_id": "p1"}))
    assert status.code == code_pb2.FAILED_PRECONDITION
    info = _unpack(status, error_details_pb2.ErrorInfo)
    assert info.reason == "OUT_OF_STOCK"
    assert info.domain == "commerce-mesh"
    assert dict(info.metadata) == {"product_id": "p1"}


def test_not_found_has_no_bad_request() -> None:
    status = status_for(NotFound("product not found"))
    assert status.code == code_pb2.NOT_FOUND
    assert _find(status, error_details_pb2.BadRequest) is None
