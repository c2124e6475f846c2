"""Fetches the tenant service's JWKS over gRPC (for services other than tenant)."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc

from services.runtime.channels import internal_channel
from services.runtime.tokens import Jwk, JwksFetcher


def remote_jwks(tenant_address: str) -> JwksFetcher:
    channel: grpc.aio.Channel | None = None

    async def fetch() -> Sequence[Jwk]:
        nonlocal channel
        if channel is None:
            channel = internal_channel(tenant_address)
        stub = tenant_pb2_grpc.TenantServiceStub(channel)
        response = await stub.GetJwks(tenant_pb2.GetJwksRequest(), timeout=3)
        return [{"kty": k.kty, "kid": k.kid, "use": k.use, "alg": k.alg, "n": k.n, "e": k.e}
                for k in response.keys]

    return fetch
