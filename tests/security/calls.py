"""Calling any RPC by its path with raw request bytes, and reading the outcome."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.errors import reason_of
from tests.security.descriptors import Rpc

Metadata = Sequence[tuple[str, str]]
CALL_TIMEOUT = 10.0
# A server stream that yields nothing this long was let in (the access check runs first).
STREAM_WAIT = 2.0


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    reason: str
    details: str

    def __str__(self) -> str:
        return f"{self.code.name} ({self.reason or 'no reason'}): {self.details}"


def _identity(data: bytes) -> bytes:
    return data


async def call(channel: grpc.aio.Channel, rpc: Rpc, request: bytes, metadata: Metadata) -> Outcome:
    """The status of one call (OK for a stream that sent a message or stayed open)."""
    try:
        if rpc.streaming:
            stream = channel.unary_stream(rpc.path, request_serializer=_identity, response_deserializer=_identity)
            responses = stream(request, metadata=tuple(metadata), timeout=STREAM_WAIT)
            async for _ in responses:
                responses.cancel()
                break
        else:
            unary = channel.unary_unary(rpc.path, request_serializer=_identity, response_deserializer=_identity)
            await unary(request, metadata=tuple(metadata), timeout=CALL_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        if rpc.streaming and error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
            return Outcome(grpc.StatusCode.OK, "", "stream open")
        return Outcome(error.code(), reason_of(error), error.details() or "")
    return Outcome(grpc.StatusCode.OK, "", "")


async def served_services(channels: Mapping[str, grpc.aio.Channel]) -> dict[str, list[str]]:
    """gRPC service full name -> the mesh services (ports) that serve it, from server reflection."""
    served: dict[str, list[str]] = {}
    for name, channel in channels.items():
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for reply in stub.ServerReflectionInfo(iter([request]), timeout=CALL_TIMEOUT):
            for service in reply.list_services_response.service:
                served.setdefault(service.name, []).append(name)
    return served
