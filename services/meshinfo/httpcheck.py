"""The HTTP authorization endpoint Envoy's ext_authz asks about every REST
request with a body: 200 lets it through, 400 refuses it with a JSON
google.rpc.Status (ErrorInfo reason, and BadRequest naming the fields when the
refusal is about fields: bodycheck.py). It also serves a few static JSON
documents (the OpenAPI document) by exact path. A minimal HTTP/1.1 server (keep-alive,
Content-Length or chunked bodies) on asyncio: Envoy is its only client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import structlog

from services.edge.refusals import DOMAIN, body_check
from services.meshinfo.bodycheck import BodyChecker, BodyRefusal

log = structlog.get_logger("commerce.meshinfo.bodycheck")
# Envoy puts this before the original path of the request it asks about.
PATH_PREFIX = "/check"
_MAX_HEAD = 64 * 1024


def refusal(refused: BodyRefusal) -> bytes:
    """The JSON google.rpc.Status of a refused body."""
    details: list[dict[str, object]] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": refused.reason,
                                         "domain": DOMAIN, "metadata": refused.metadata}]
    if refused.violations:
        details.append({"@type": "type.googleapis.com/google.rpc.BadRequest",
                        "fieldViolations": [{"field": v.field, "description": v.description}
                                            for v in refused.violations]})
    code = body_check(refused.reason).code_number
    return json.dumps({"code": code, "message": refused.message, "details": details}, separators=(",", ":")).encode()


def _response(status: str, body: bytes = b"", content_type: str = "application/json") -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n"
    if body:
        head += f"content-type: {content_type}\r\n"
    return head.encode() + b"\r\n" + body


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


class CheckServer:
    """``documents``: exact paths served to GET as JSON (e.g. /openapi.json, routed here by Envoy)."""

    def __init__(self, checker: BodyChecker, documents: Mapping[str, bytes] | None = None) -> None:
        self._checker = checker
        self._documents = dict(documents or {})

    def answer(self, method: str, target: str, body: bytes) -> bytes:
        document = self._documents.get(target.split("?", 1)[0])
        if document is not None and method in ("GET", "HEAD"):
            return _response("200 OK", document) if method == "GET" else _response("200 OK")
        path = target[len(PATH_PREFIX):] if target.startswith(PATH_PREFIX) else target
        try:
            refused = self._checker.check(method, path, body)
        except Exception:  # a bug: logged; the connection drops and Envoy answers 503 BODY_CHECK_UNAVAILABLE
            log.exception("body check failed", method=method, path=path.split("?", 1)[0])
            raise
        if refused is None:
            return _response("200 OK")
        log.info("refused a request body", method=method, path=path.split("?", 1)[0], reason=refused.reason,
                 fields=[v.field for v in refused.violations])
        return _response("400 Bad Request", refusal(refused))

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > _MAX_HEAD:
                    break
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                body = await _read_body(reader, headers)
                writer.write(self.answer(method, target, body))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def start(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self.handle, host, port, limit=_MAX_HEAD)
