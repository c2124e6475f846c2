"""Traces on this machine with nothing to install: a small OTLP/HTTP receiver that the
services and Envoy export to, writing each export as one line of OTLP JSON, and the span
tree of one order read back from those files.

    receiver = OtlpReceiver(port, out=Path(".data/traces/spans.jsonl"))   # make run
    receiver = OtlpReceiver(0)                                             # a test: receiver.spans()
    print(span_tree(read_spans(Path(".data/traces")), order_id))

The receiver takes ``POST /v1/traces`` with an ``ExportTraceServiceRequest`` as protobuf
(``application/x-protobuf``, what the Python exporter and Envoy send) or JSON, gzip or not.
Lines are the OTLP JSON encoding (ids in hex, field names in lowerCamelCase), so any OTLP
tool (e.g. an OpenTelemetry Collector's otlpjsonfile receiver) reads them too.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

TRACES_PATH = "/v1/traces"
_KINDS = {0: "", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    service: str
    kind: str
    start_ns: int
    end_ns: int
    error: bool
    attributes: dict[str, Any] = field(default_factory=dict)
    links: tuple[tuple[str, str], ...] = ()
    events: tuple[tuple[str, dict[str, Any]], ...] = ()  # e.g. ("exception", {"exception.message": ...})

    @property
    def millis(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


def spans_of(request: ExportTraceServiceRequest) -> Iterator[Span]:
    for resource in request.resource_spans:
        resource_attributes = {kv.key: _value(kv.value) for kv in resource.resource.attributes}
        service = str(resource_attributes.get("service.name", ""))
        for scope in resource.scope_spans:
            for s in scope.spans:
                yield Span(s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.name, service,
                           _KINDS.get(s.kind, ""), s.start_time_unix_nano, s.end_time_unix_nano,
                           s.status.code == 2, {kv.key: _value(kv.value) for kv in s.attributes},
                           tuple((link.trace_id.hex(), link.span_id.hex()) for link in s.links),
                           tuple((e.name, {kv.key: _value(kv.value) for kv in e.attributes}) for e in s.events))


_HEX_IDS = ("traceId", "spanId", "parentSpanId")


def _hex_ids(node: Any) -> Any:
    """protobuf's JSON writes bytes as base64; OTLP JSON writes trace and span ids in hex."""
    import base64

    if isinstance(node, dict):
        return {k: (base64.b64decode(v).hex() if k in _HEX_IDS and isinstance(v, str) else _hex_ids(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_ids(v) for v in node]
    return node


def _from_hex_ids(node: Any) -> Any:
    import base64

    if isinstance(node, dict):
        return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in _HEX_IDS and isinstance(v, str)
                    else _from_hex_ids(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_from_hex_ids(v) for v in node]
    return node


def to_otlp_json(request: ExportTraceServiceRequest) -> str:
    return json.dumps(_hex_ids(json_format.MessageToDict(request)), separators=(",", ":"))


def from_otlp_json(line: str) -> ExportTraceServiceRequest:
    return json_format.ParseDict(_from_hex_ids(json.loads(line)), ExportTraceServiceRequest(),
                                 ignore_unknown_fields=True)


class OtlpReceiver:
    """OTLP/HTTP trace receiver on 127.0.0.1:``port`` (0 = a free one), in a thread of its own.
    Keeps the spans in memory, and appends each export to ``out`` as OTLP JSON when given."""

    def __init__(self, port: int = 0, *, out: Path | None = None, host: str = "127.0.0.1",
                 keep: bool | None = None) -> None:
        """``keep``: hold the spans in memory (default: when they go to no file); a receiver that
        neither keeps nor writes them only counts them (``received``), as a benchmark's does."""
        self._out = out
        self._lock = threading.Lock()
        self._spans: list[Span] = []
        self._keep = out is None if keep is None else keep
        self.received = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.split("?", 1)[0] != TRACES_PATH:
                    self.send_error(404)
                    return
                try:
                    body = self._body()
                    if self.headers.get("content-encoding", "") == "gzip":
                        body = gzip.decompress(body)
                    if self.headers.get("content-type", "").startswith("application/json"):
                        request = from_otlp_json(body.decode())
                    else:
                        request = ExportTraceServiceRequest.FromString(body)
                except Exception as exc:
                    self.send_error(400, f"not an OTLP trace export: {exc}")
                    return
                receiver._received(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _body(self) -> bytes:
                """The request body, sized or chunked (Envoy's exporter sends chunks)."""
                if "chunked" not in self.headers.get("transfer-encoding", "").lower():
                    return self.rfile.read(int(self.headers.get("content-length") or 0))
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT should say for this receiver."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OtlpReceiver:
        if self._out is not None:
            self._out.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _received(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            self.received += sum(len(scope.spans) for resource in request.resource_spans
                                 for scope in resource.scope_spans)
            if self._keep:
                self._spans.extend(spans_of(request))
            if self._out is not None:
                with self._out.open("a") as out:
                    out.write(to_otlp_json(request) + "\n")

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)


def read_spans(folder: Path) -> list[Span]:
    """Every span in the ``*.jsonl`` files of ``folder`` (lines that do not parse are skipped)."""
    found: list[Span] = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                found.extend(spans_of(from_otlp_json(line)))
            except (ValueError, json_format.ParseError):
                continue
    return found


def traces_of_order(spans: Iterable[Span], order_id: str) -> list[list[Span]]:
    """The traces (each a list of spans) where a span names ``order_id``, oldest first."""
    spans = list(spans)
    ids = {s.trace_id for s in spans if s.attributes.get("commerce.order_id") == order_id}
    traces = [[s for s in spans if s.trace_id == trace_id] for trace_id in ids]
    return sorted(traces, key=lambda t: min(s.start_ns for s in t))


def span_tree(trace: list[Span]) -> str:
    """One line per span, children indented under their parent, in start order:
    offset from the trace's start, duration, service, name, and the outcome when known."""
    by_id = {s.span_id: s for s in trace}
    children: dict[str, list[Span]] = {}
    roots: list[Span] = []
    for s in trace:
        if s.parent_id and s.parent_id in by_id:
            children.setdefault(s.parent_id, []).append(s)
        else:
            roots.append(s)
    start = min(s.start_ns for s in trace)
    lines = [f"trace {trace[0].trace_id} ({len(trace)} spans)"]

    def walk(s: Span, depth: int) -> None:
        extra = [f"{key.removeprefix('commerce.')}={s.attributes[key]}"
                 for key in ("commerce.outcome", "commerce.reason", "rpc.grpc.status_code") if key in s.attributes]
        if s.error:
            extra.append("ERROR")
        lines.append(f"{(s.start_ns - start) / 1e6:9.2f} ms {s.millis:8.2f} ms  {'  ' * depth}"
                     f"{s.service or '?'}: {s.name}{'  [' + ', '.join(extra) + ']' if extra else ''}")
        for child in sorted(children.get(s.span_id, []), key=lambda c: c.start_ns):
            walk(child, depth + 1)

    for root in sorted(roots, key=lambda r: r.start_ns):
        walk(root, 0)
    return "\n".join(lines)
