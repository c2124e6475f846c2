"""Traces with OpenTelemetry: off unless an OTLP endpoint is configured, and then one
trace per client call across the mesh.

Configured by the standard variables (read into ``Settings``): tracing is on when
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (OTLP over
HTTP/protobuf), unless ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``; the SDK
itself reads ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (default: parent-based,
always on), ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_HEADERS`` / ``_TIMEOUT`` / ``_COMPRESSION``
and ``OTEL_RESOURCE_ATTRIBUTES``. When off, nothing is installed: no interceptor, no
patched driver, and ``span()`` hands out one shared no-op.

What makes spans when on:
- gRPC servers and clients: opentelemetry-instrumentation-grpc's grpc.aio interceptors
  (W3C ``traceparent`` in and out; health checks and reflection are left out);
- SQL: opentelemetry-instrumentation-asyncpg (statement text only, never its parameters);
  a statement outside any trace (a background poll) starts none (``_NoRootStatements``);
- the outbox row, the relay's publish and the consumer's handler (services/runtime/events),
  linked through the event's ``traceparent`` header; saga steps; the SMTP send.

Every span carries the tenant (``commerce.tenant_id``): from the caller of the RPC, else
from its parent span in this process, else set where the tenant is known (events).
No span attribute holds a token, a payment token, a password or a secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import Span, SpanKind

from services.runtime.context import current_caller
from services.runtime.settings import Settings

TENANT = "commerce.tenant_id"
ORDER = "commerce.order_id"
OUTCOME = "commerce.outcome"
EVENT_ID = "commerce.event_id"
EVENT_TYPE = "commerce.event_type"

_enabled = False
_provider: Any = None
tracer = trace.get_tracer("commerce-mesh")  # a proxy: real once configure() installed the SDK
_NOOP_SPAN = trace.INVALID_SPAN


def enabled() -> bool:
    return _enabled


def configure(service: str, settings: Settings) -> bool:
    """Installs the SDK (exporter, sampler, instrumentations) when tracing is on; whether it is."""
    global _enabled, _provider
    endpoint = settings.otlp_traces_url()
    if endpoint is None or _enabled:
        return _enabled
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}),
                              sampler=_no_root_statements())
    provider.add_span_processor(_TenantProcessor())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    AsyncPGInstrumentor(capture_parameters=False).instrument(  # type: ignore[no-untyped-call]
        tracer_provider=provider)
    _provider, _enabled = provider, True
    return True


def shutdown(timeout_millis: int = 5000) -> None:
    """Exports what is buffered (a process leaving with os._exit skips atexit)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis)
        _provider.shutdown()


def server_interceptors() -> list[Any]:
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

    quiet = filters.negate(filters.any_of(filters.health_check(), filters.service_prefix("grpc.reflection.")))
    return [aio_server_interceptor(tracer_provider=_provider, filter_=quiet)]  # type: ignore[no-untyped-call]


def client_interceptors() -> list[Any]:
    """For ``grpc.aio.insecure_channel(..., interceptors=...)`` of service-to-service channels."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors(tracer_provider=_provider))  # type: ignore[no-untyped-call]


def traceparent() -> str:
    """W3C traceparent of the current span ("" when none is recording)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def remote_parent(traceparent: str) -> otel_context.Context:
    """A context whose parent is the (remote) span ``traceparent`` names."""
    return propagate.extract({"traceparent": traceparent}) if traceparent else otel_context.Context()


def set_tenant(tenant_id: str) -> None:
    if _enabled and tenant_id:
        trace.get_current_span().set_attribute(TENANT, tenant_id)


class _Noop:
    """The shared no-op context of ``span()`` when tracing is off."""

    def __enter__(self) -> Span:
        return _NOOP_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_NOOP = _Noop()


def span(name: str, attributes: Mapping[str, Any] | None = None, *, kind: SpanKind = SpanKind.INTERNAL,
         parent: str | None = None, links: Sequence[trace.Link] = ()) -> contextlib.AbstractContextManager[Span]:
    """A current span (ended on exit, exceptions recorded) or, tracing off, a shared no-op.
    ``parent``: a traceparent to continue (an event's) instead of the current span."""
    if not _enabled:
        return _NOOP
    context = remote_parent(parent) if parent is not None else None
    return tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes, links=links)


def _no_root_statements() -> Any:
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult, _get_from_env_or_default

    base = _get_from_env_or_default()

    class NoRootStatements(Sampler):
        """The configured sampler, except that a SQL statement never starts a trace."""

        def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                          attributes: Any = None, links: Any = None, trace_state: Any = None) -> SamplingResult:
            parent = trace.get_current_span(parent_context).get_span_context()
            if not parent.is_valid and attributes and ("db.system" in attributes or "db.system.name" in attributes):
                return SamplingResult(Decision.DROP)
            return base.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

        def get_description(self) -> str:
            return f"NoRootStatements{{{base.get_description()}}}"

    return NoRootStatements()


class _TenantProcessor(SpanProcessor):
    """Puts the tenant on every span that starts: the RPC caller's, or its local parent's."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        parent = trace.get_current_span(parent_context)
        attributes = getattr(parent, "attributes", None)
        tenant = attributes.get(TENANT) if attributes else None
        if not tenant:
            tenant = current_caller().tenant_id
        if tenant:
            span.set_attribute(TENANT, tenant)

    def on_end(self, span: Any) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
