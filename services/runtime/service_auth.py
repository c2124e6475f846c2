"""Calling another service's ROLE_SERVICE methods on the mesh's own behalf.

    tokens = ServiceTokens(settings, service="order")
    await stub.Reserve(request, metadata=await tokens.metadata(tenant_id))

Tokens (roles ["service"], tenant "platform") come from the tenant service's internal
``commerce.tenant.v1.ServiceTokenService/IssueServiceToken`` in exchange for the shared
``service_secret``, and are reused until shortly before they expire. Tests inject
``issue``: an async callable returning a token (or a token and its lifetime in seconds).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import grpc
from commerce.tenant.v1 import service_token_pb2, service_token_pb2_grpc

from services.runtime import telemetry
from services.runtime.channels import internal_channel
from services.runtime.events import tracing
from services.runtime.settings import Settings

Issue = Callable[[], Awaitable[str | tuple[str, int]]]
Metadata = tuple[tuple[str, str], ...]
# Lifetime assumed for an injected token that does not state one.
_DEFAULT_TTL_SECONDS = 300
_ISSUE_TIMEOUT_SECONDS = 5.0


class ServiceTokens:
    def __init__(self, settings: Settings, service: str = "service", *, issue: Issue | None = None,
                 refresh_before_seconds: float = 60.0) -> None:
        self._settings = settings
        self._service = service
        self._issue = issue or self._issue_remote
        self._refresh_before = refresh_before_seconds
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._channel: grpc.aio.Channel | None = None

    async def token(self) -> str:
        if self._fresh():
            return self._token
        async with self._lock:
            if not self._fresh():
                issued = await self._issue()
                token, ttl = issued if isinstance(issued, tuple) else (issued, _DEFAULT_TTL_SECONDS)
                self._token = token
                # Refresh at the latest halfway through a short-lived token.
                self._expires_at = time.monotonic() + ttl - min(self._refresh_before, ttl / 2)
        return self._token

    def _fresh(self) -> bool:
        return bool(self._token) and time.monotonic() < self._expires_at

    async def metadata(self, tenant_id: str) -> Metadata:
        """gRPC metadata for a call on behalf of the mesh in ``tenant_id`` (with the current
        request's trace, when there is one)."""
        metadata: Metadata = (("authorization", f"Bearer {await self.token()}"), ("x-tenant-id", tenant_id))
        current = tracing.current_traceparent()
        if tracing.is_valid(current) and not telemetry.enabled():  # else the channel's interceptor adds it
            metadata += (("traceparent", tracing.child_of(current)),)
        return metadata

    def forget(self) -> None:
        """Drop the cached token (e.g. after the callee answered UNAUTHENTICATED)."""
        self._token, self._expires_at = "", 0.0

    async def _issue_remote(self) -> tuple[str, int]:
        if self._channel is None:
            self._channel = internal_channel(self._settings.address_of("tenant"))
        stub = service_token_pb2_grpc.ServiceTokenServiceStub(self._channel)
        response = await stub.IssueServiceToken(
            service_token_pb2.IssueServiceTokenRequest(
                service=self._service, secret=self._settings.service_secret.get_secret_value()),
            timeout=_ISSUE_TIMEOUT_SECONDS)
        return response.access_token, int(response.expires_in)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
