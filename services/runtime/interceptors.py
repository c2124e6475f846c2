"""The one server interceptor every service runs: establishes who is calling
(from the bearer token), enforces the method's declared access rule, maps
domain errors to gRPC status with google.rpc details, and records metrics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import grpc
import structlog
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from prometheus_client import Counter, Histogram

from services.runtime import telemetry
from services.runtime.access import AccessRule
from services.runtime.context import ANONYMOUS, Caller, reset_caller, reset_deadline, set_caller, set_deadline
from services.runtime.errors import (
    ERROR_DOMAIN,
    DomainError,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
    Unimplemented,
    in_json_names,
)
from services.runtime.events.tracing import reset_traceparent, set_traceparent
from services.runtime.tokens import TokenVerifier, bearer_token

log = structlog.get_logger("commerce.rpc")
# Methods outside commerce.* (health, reflection) carry no access rule and need no token.
_OPEN_PREFIXES = ("/grpc.health.", "/grpc.reflection.")

RPCS = Counter("commerce_rpc_total", "RPCs handled", ["method", "code"])
LATENCY = Histogram("commerce_rpc_seconds", "RPC handling time", ["method"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


def status_for(error: DomainError) -> status_pb2.Status:
    code = getattr(code_pb2, error.code, code_pb2.UNKNOWN)
    details = []
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata)
    packed = any_pb2.Any()
    packed.Pack(info)
    details.append(packed)
    if isinstance(error, InvalidArgument):
        bad = error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ])
        packed_bad = any_pb2.Any()
        packed_bad.Pack(bad)
        details.append(packed_bad)
    return status_pb2.Status(code=code, message=error.message, details=details)


def _transcoded(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    """A REST call through the edge's transcoder (Envoy adds x-envoy-original-path)."""
    return any(key == "x-envoy-original-path" for key, _ in context.invocation_metadata() or ())


def status_for_caller(context: grpc.aio.ServicerContext[Any, Any], error: DomainError) -> status_pb2.Status:
    """``status_for``, with BadRequest naming fields as the caller sent them: lowerCamelCase
    in a JSON body or query (a REST call), as in the proto for native gRPC."""
    if isinstance(error, InvalidArgument) and _transcoded(context):
        error = in_json_names(error)
    return status_for(error)


async def abort_with(context: grpc.aio.ServicerContext[Any, Any], error: DomainError) -> None:
    status = status_for_caller(context, error)
    await context.abort(
        grpc.StatusCode[error.code],
        status.message,
        trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),),
    )


class _Undecodable:
    """A request body protobuf could not parse (e.g. a string field that is not UTF-8)."""

    def __init__(self, error: DecodeError) -> None:
        self.error = error


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """Lets a malformed body reach the wrapper, which answers INVALID_ARGUMENT (not UNKNOWN)."""
    if deserializer is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return _Undecodable(exc)

    return parse


def _check_decoded(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgument.field("request", f"is not a valid message: {request.error}")


_TWICE = "\x00"  # stands for an authorization header sent twice: refused as malformed, as at the edge


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
    """The call's text metadata, read once per call (token, x-tenant-id, traceparent)."""
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            found[key] = _TWICE if key == "authorization" and key in found else value
    return found


def _bearer(metadata: Mapping[str, str]) -> str | None:
    value = metadata.get("authorization")
    return None if value is None else bearer_token(value)


async def _unknown_method(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """A method this server does not have: UNIMPLEMENTED with the edge's reason (UNKNOWN_METHOD),
    not gRPC's bare "Method not found!". Any arity: nothing is read."""
    await abort_with(context, Unimplemented("no such method or path", reason="UNKNOWN_METHOD"))


_UNKNOWN_METHOD = grpc.stream_stream_rpc_method_handler(_unknown_method)


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, verifier: TokenVerifier, rules: Mapping[str, AccessRule]) -> None:
        self._verifier = verifier
        self._rules = rules

    async def _caller(self, metadata: Mapping[str, str], method: str) -> Caller:
        token = _bearer(metadata)
        rule = self._rules.get(method)
        if rule is None:
            raise PermissionDenied(f"{method} declares no access rule", reason="NO_ACCESS_RULE")
        if token is None:
            if rule.anonymous:
                return ANONYMOUS
            raise Unauthenticated("this call needs a bearer token", reason="TOKEN_REQUIRED")
        caller = await self._verifier.verify(token, metadata.get("x-tenant-id") or None)
        if not rule.allows(caller.roles) and not rule.anonymous:
            raise PermissionDenied("your role may not make this call", reason="ROLE_NOT_ALLOWED",
                                   metadata={"method": method})
        return caller

    async def _still_valid(self, caller: Caller) -> None:
        # The x-tenant-id override was allowed at the start and depends only on the token's
        # roles, so only expiry and revocation can have changed since.
        if caller.token:
            await self._verifier.verify(caller.token)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None:
            return _UNKNOWN_METHOD
        if method.startswith(_OPEN_PREFIXES):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._wrap_unary(handler.unary_unary, method),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap_stream(handler.unary_stream, method),
                request_deserializer=_lenient(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _wrap_unary(self, behavior: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            started = time.perf_counter()
            code = "OK"
            try:
                metadata = _metadata(context)
                caller = await self._caller(metadata, method)
                _check_decoded(request)
                token = set_caller(caller)
                telemetry.set_tenant(caller.tenant_id)
                trace = set_traceparent(metadata.get("traceparent", ""))
                deadline = set_deadline(context.time_remaining())
                try:
                    return await behavior(request, context)
                finally:
                    reset_deadline(deadline)
                    reset_traceparent(trace)
                    reset_caller(token)
            except DomainError as error:
                code = error.code
                await abort_with(context, error)
            except grpc.aio.AbortError:
                code = "ABORTED_BY_HANDLER"
                raise
            except Exception:
                code = "INTERNAL"
                log.exception("unhandled error", method=method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")
            finally:
                RPCS.labels(method, code).inc()
                LATENCY.labels(method).observe(time.perf_counter() - started)

        return wrapper

    def _wrap_stream(self, behavior: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            code = "OK"
            try:
                metadata = _metadata(context)
                caller = await self._caller(metadata, method)
                _check_decoded(request)
                token = set_caller(caller)
                telemetry.set_tenant(caller.tenant_id)
                trace = set_traceparent(metadata.get("traceparent", ""))
                try:
                    async for item in behavior(request, context):
                        # A stream outlives checks made at its start: nothing more is sent once
                        # the token has expired or was revoked (tenant suspended, user deleted).
                        await self._still_valid(caller)
                        yield item
                finally:
                    reset_traceparent(trace)
                    reset_caller(token)
            except DomainError as error:
                code = error.code
                await abort_with(context, error)
            except grpc.aio.AbortError:
                raise
            except Exception:
                code = "INTERNAL"
                log.exception("unhandled error", method=method)
                await context.abort(grpc.StatusCode.INTERNAL, "internal error; it has been logged")
            finally:
                RPCS.labels(method, code).inc()

        return wrapper
