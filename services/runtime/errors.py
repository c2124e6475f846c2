"""Typed domain errors. Domain code raises these; the server interceptor turns
them into gRPC status codes with google.rpc.ErrorInfo / BadRequest details.
This module imports no gRPC so the domain can use it freely."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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
        fields = ", ".join(v.field for v in violations)
        first = violations[0].description if violations else ""
        super().__init__(f"invalid {fields}: {first}", reason=reason)
        self.violations = list(violations)

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


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


class Unavailable(DomainError):
    code = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"
