"""structlog set-up, once per process. Every line logged inside a trace carries its
``trace_id`` and ``span_id`` (the current span's with tracing on; with it off, the trace
and parent span the request or event came with), so a log line leads to its trace."""

from __future__ import annotations

import logging
import sys

import structlog

from services.runtime.events import tracing


def add_trace_ids(_logger: object, _method: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
    parent = tracing.current_traceparent()
    if len(parent) == 55:  # 00-<trace id>-<span id>-<flags>
        event["trace_id"] = parent[3:35]
        event["span_id"] = parent[36:52]
    return event


def configure(service: str, level: str = "INFO", fmt: str = "console") -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    logging.basicConfig(stream=sys.stdout, level=level.upper(), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
