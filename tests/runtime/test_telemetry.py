"""Tracing is off unless an OTLP endpoint is configured, and then costs nothing: no
interceptor, no span; log lines still carry the trace the request came with."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
import structlog

from services.runtime import logs, telemetry
from services.runtime.events import tracing
from services.runtime.settings import Settings
from tests.edge.test_render import DefaultSettings


def test_tracing_is_off_by_default() -> None:
    assert DefaultSettings().otlp_traces_url() is None


@pytest.mark.parametrize(("otel", "url"), [
    ({"otel_exporter_otlp_endpoint": "http://collector:4318/"}, "http://collector:4318/v1/traces"),
    ({"otel_exporter_otlp_endpoint": "http://a:4318", "otel_exporter_otlp_traces_endpoint": "http://b:9/t"},
     "http://b:9/t"),
    ({"otel_exporter_otlp_endpoint": "http://collector:4318", "otel_sdk_disabled": True}, None),
    ({"otel_exporter_otlp_endpoint": "http://collector:4318", "otel_traces_exporter": "none"}, None),
])
def test_the_standard_variables_say_where_spans_go(otel: dict[str, object], url: str | None) -> None:
    assert DefaultSettings().model_copy(update=otel).otlp_traces_url() == url


def test_the_standard_variable_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
    settings = Settings()
    assert settings.otlp_traces_url() == "http://collector:4318/v1/traces"
    assert settings.trace_sampling_percent() == pytest.approx(10.0)


def test_with_tracing_off_nothing_is_installed_and_spans_are_one_shared_no_op() -> None:
    assert not telemetry.enabled()
    assert telemetry.server_interceptors() == [] and telemetry.client_interceptors() == []
    with telemetry.span("saga reserve", {telemetry.ORDER: "o-1"}) as first, telemetry.span("other") as second:
        assert first is second and not first.is_recording()


def test_log_lines_carry_the_trace_the_request_came_with() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        logs.configure("test", "INFO", "json")
        token = tracing.set_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        try:
            structlog.get_logger("t").info("inside")
        finally:
            tracing.reset_traceparent(token)
        structlog.get_logger("t").info("outside")
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert (inside["trace_id"], inside["span_id"]) == ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert "trace_id" not in outside
