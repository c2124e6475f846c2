"""Typed domain errors. Domain code raises these; the server interceptor turns
them into gRPC status codes with google.rpc.ErrorInfo / BadRequest details.
This module imports no gRPC so the domain can use it freely."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# The ErrorInfo domain of every error the mesh gives, from a service or from the edge.
ERROR_DOMAIN = "commerce-mesh"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class DomainError(Exception):
    """Base of every error a caller is meant to see. ``code`` is a grpc.StatusCode name."""

    code = "UNKNOWN"
    default_reason = "UNKNOWN"

    def __init__(self, message: str, *, reason: str | None = None,
                 metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = dict(metadata or {})


class InvalidArgument(DomainError):
    code = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Sequence[FieldViolation], *, reason: str | None = None) -> None:
        super().__init__(invalid_message(violations), reason=reason)
        self.violations = list(violations)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


def invalid_message(violations: Sequence[FieldViolation]) -> str:
    fields = ", ".join(v.field for v in violations)
    first = violations[0].description if violations else ""
    return f"invalid {fields}: {first}"


_NAME_OR_KEY = re.compile(r"\[[^\]]*\]|[A-Za-z0-9_]+")


def json_path(path: str) -> str:
    """A field path as REST/JSON spells it ("lines[0].product_id" -> "lines[0].productId"), as
    BadRequest.FieldViolation asks for JSON requests; map keys in brackets stay as they are."""
    def camel(match: re.Match[str]) -> str:
        name = match.group(0)
        if name.startswith("["):
            return name
        head, *rest = name.split("_")
        return head + "".join(part[:1].upper() + part[1:] for part in rest)

    return _NAME_OR_KEY.sub(camel, path)


def in_json_names(error: InvalidArgument) -> InvalidArgument:
    """The same refusal with its field paths (and message) as a REST caller spells them."""
    renamed = InvalidArgument([FieldViolation(json_path(v.field), v.description) for v in error.violations],
                              reason=error.reason)
    renamed.metadata = dict(error.metadata)
    return renamed


class NotFound(DomainError):
    code = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class AlreadyExists(DomainError):
    code = "ALREADY_EXISTS"
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    code = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class Aborted(DomainError):
    """A concurrent change won; the caller may retry."""

    code = "ABORTED"
    default_reason = "CONCURRENT_MODIFICATION"


class PermissionDenied(DomainError):
    code = "PERMISSION_DENIED"
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class ResourceExhausted(DomainError):
    code = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"


class Unimplemented(DomainError):
    code = "UNIMPLEMENTED"
    default_reason = "UNKNOWN_METHOD"


class Unavailable(DomainError):
    code = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"
