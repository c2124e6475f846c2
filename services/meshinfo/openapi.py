"""The OpenAPI document of the REST edge (gen/openapi/commerce.openapi.json,
generated from the proto annotations by `make gen`), served by meshinfo's HTTP
port at ``PATH``; Envoy routes GET /openapi.json there."""

from __future__ import annotations

from pathlib import Path

import structlog

log = structlog.get_logger("commerce.meshinfo.openapi")
PATH = "/openapi.json"
FILE_NAME = "commerce.openapi.json"


def document_file(descriptor: Path) -> Path:
    """gen/openapi/commerce.openapi.json beside the descriptor set's folder (gen/descriptor/)."""
    return descriptor.parent.parent / "openapi" / FILE_NAME


def load_documents(descriptor: Path) -> dict[str, bytes]:
    """{PATH: the document}, or nothing (404) when the file is missing."""
    path = document_file(descriptor)
    try:
        return {PATH: path.read_bytes()}
    except FileNotFoundError:
        log.warning("no OpenAPI document: GET /openapi.json answers 404", path=str(path))
        return {}
