"""commerce.tenant.v1.ServiceTokenService: short-lived tokens for the mesh's own
services (sub "service:<name>", tenant "platform", roles ["service"]), issued to
callers that present the shared service secret. Internal; never routed by the edge."""

from __future__ import annotations

import hmac
import re
from typing import Any, TypeAlias

import grpc
from commerce.tenant.v1 import service_token_pb2, service_token_pb2_grpc
from pydantic import SecretStr

from services.runtime.context import PLATFORM_TENANT, SERVICE
from services.runtime.errors import InvalidArgument, Unauthenticated
from services.tenant.issuer import TokenIssuer

SERVICE_DESCRIPTOR = service_token_pb2.DESCRIPTOR.services_by_name["ServiceTokenService"]
SERVICE_TOKEN_TTL_SECONDS = 300
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def secret_matches(configured: SecretStr, presented: str) -> bool:
    """Constant-time comparison; an unconfigured (empty) secret matches nothing."""
    expected = configured.get_secret_value().encode()
    return bool(expected) and hmac.compare_digest(expected, presented.encode())


class ServiceTokenServicer(service_token_pb2_grpc.ServiceTokenServiceServicer):
    def __init__(self, issuer: TokenIssuer, secret: SecretStr, ttl_seconds: int = SERVICE_TOKEN_TTL_SECONDS) -> None:
        self._issuer = issuer
        self._secret = secret
        self._ttl = ttl_seconds

    async def IssueServiceToken(self, request: service_token_pb2.IssueServiceTokenRequest,
                                context: Context) -> service_token_pb2.IssueServiceTokenResponse:
        if not secret_matches(self._secret, request.secret):
            raise Unauthenticated("unknown service secret", reason="INVALID_SERVICE_SECRET")
        if not _SERVICE_NAME.fullmatch(request.service):
            raise InvalidArgument.field("service", "a service name: lowercase letters, digits and '-'")
        issued = self._issuer.issue(f"service:{request.service}", PLATFORM_TENANT, [SERVICE], self._ttl)
        return service_token_pb2.IssueServiceTokenResponse(access_token=issued.token, expires_in=issued.expires_in)
