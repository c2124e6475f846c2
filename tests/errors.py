"""The google.rpc details of a refused gRPC call, read one way by every test: the
``grpc-status-details-bin`` trailer through grpcio-status (``rpc_status.from_call``,
which also checks that its code and message match the call's), then its ErrorInfo
and BadRequest. Works for sync and grpc.aio errors alike."""

from __future__ import annotations

import grpc
import httpx
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status


def rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc.Status the server attached, or None when it attached none."""
    status: status_pb2.Status | None = rpc_status.from_call(error)
    return status


def error_details(error: grpc.RpcError) -> tuple[error_details_pb2.ErrorInfo, error_details_pb2.BadRequest]:
    """The ErrorInfo and BadRequest of a refusal (empty messages when absent); asserts a rich status exists."""
    status = rich_status(error)
    assert status is not None, f"no google.rpc.Status on {error.code()}: {error.details()}"
    info, bad = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    for detail in status.details:
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(bad.DESCRIPTOR):
            detail.Unpack(bad)
    return info, bad


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason ("" when the call carried no rich status)."""
    return error_details(error)[0].reason if rich_status(error) is not None else ""


def violated_fields(error: grpc.RpcError) -> list[str]:
    """The fields BadRequest names, in order."""
    return [v.field for v in error_details(error)[1].field_violations]


def rest_error(reply: httpx.Response) -> tuple[int, int, str]:
    """(HTTP status, google.rpc code, ErrorInfo reason) of a REST refusal, after checking its shape:
    a JSON google.rpc.Status with a message and an ErrorInfo of domain commerce-mesh first."""
    assert reply.headers.get("content-type", "").startswith("application/json"), (reply.status_code, reply.text)
    status = reply.json()
    assert set(status) <= {"code", "message", "details"} and status["message"], status
    info = status["details"][0]
    assert info["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" and info["domain"] == "commerce-mesh", status
    return reply.status_code, int(status["code"]), str(info["reason"])
