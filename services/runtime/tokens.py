"""Verifying access tokens (RS256 JWTs issued by the tenant service).

Every service verifies tokens itself, because internal callers bypass Envoy.
Public keys come from a JWKS source: the tenant service's key store in-process,
or its GetJwks RPC for every other service (refreshed periodically and on an
unknown ``kid``). A token whose signature holds is still refused when its
tenant was suspended or its user deleted after it was issued
(services/runtime/revocations.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm

from services.runtime.context import ADMIN, SERVICE, Caller
from services.runtime.errors import Unauthenticated
from services.runtime.revocations import RevocationFeed

Jwk = Mapping[str, str]
JwksFetcher = Callable[[], Awaitable[Sequence[Jwk]]]
TOKEN_LEEWAY_SECONDS = 30
_UNKNOWN_KID_REFRESH_SECONDS = 5.0
# Roles whose tokens may name another tenant with x-tenant-id.
_TENANT_OVERRIDE_ROLES = frozenset({ADMIN, SERVICE})


class KeySet:
    """Public keys by ``kid``, refreshed from a JWKS fetcher."""

    def __init__(self, fetch: JwksFetcher, refresh_seconds: float = 300.0) -> None:
        self._fetch = fetch
        self._refresh_seconds = refresh_seconds
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str) -> Any:
        now = time.monotonic()
        stale = now - self._fetched_at > self._refresh_seconds
        unknown = kid not in self._keys and now - self._fetched_at > _UNKNOWN_KID_REFRESH_SECONDS
        if stale or unknown:
            await self.refresh()
        key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated("token signed with an unknown key", reason="UNKNOWN_KEY")
        return key

    async def refresh(self) -> None:
        async with self._lock:
            try:
                jwks = await self._fetch()
            except Exception as exc:  # keep the old keys; the token may still verify
                if not self._keys:
                    raise Unauthenticated(f"cannot fetch signing keys: {exc}", reason="KEYS_UNAVAILABLE") from exc
                return
            self._keys = {k["kid"]: RSAAlgorithm.from_jwk(dict(k)) for k in jwks if k.get("kty") == "RSA"}
            self._fetched_at = time.monotonic()


class TokenVerifier:
    """Turns a bearer token into a Caller, or raises Unauthenticated."""

    def __init__(self, keys: KeySet, issuer: str, audience: str, cache_size: int = 10_000,
                 revocations: RevocationFeed | None = None) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._cache: OrderedDict[str, tuple[float, float, Caller]] = OrderedDict()  # exp, iat, caller
        self._cache_size = cache_size
        self.revocations = revocations

    async def start(self) -> None:
        if self.revocations is not None:
            await self.revocations.start()

    async def stop(self) -> None:
        if self.revocations is not None:
            await self.revocations.stop()

    async def verify(self, token: str, tenant_override: str | None = None) -> Caller:
        cached = self._cache.get(token)
        if cached is not None and cached[0] > time.time():
            self._cache.move_to_end(token)
            _, issued_at, caller = cached
        else:
            claims = await self._decode(token)
            caller = _caller_from(claims, token)
            issued_at = float(claims["iat"])
            self._cache[token] = (float(claims["exp"]), issued_at, caller)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        if self.revocations is not None:
            self.revocations.revocations.check(caller.tenant_id, caller.subject, issued_at)
        if tenant_override and tenant_override != caller.tenant_id:
            if not caller.has_any(_TENANT_OVERRIDE_ROLES):
                raise Unauthenticated("x-tenant-id is only honoured for admin and service tokens",
                                      reason="TENANT_OVERRIDE_FORBIDDEN")
            return Caller(caller.subject, tenant_override, caller.roles, caller.token)
        return caller

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)

    async def _decode(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"malformed token: {exc}", reason="MALFORMED_TOKEN") from exc
        if header.get("alg") != "RS256":
            raise Unauthenticated("token must be signed with RS256", reason="BAD_ALGORITHM")
        key = await self._keys.key_for(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=["RS256"], audience=self._audience, issuer=self._issuer,
                leeway=TOKEN_LEEWAY_SECONDS, options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired", reason="TOKEN_EXPIRED") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}", reason="INVALID_TOKEN") from exc
        return claims


def _caller_from(claims: Mapping[str, Any], token: str) -> Caller:
    roles = claims.get("roles")
    tenant = claims.get("tenant")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated("token has no roles claim", reason="INVALID_TOKEN")
    if not isinstance(tenant, str) or not tenant:
        raise Unauthenticated("token has no tenant claim", reason="INVALID_TOKEN")
    return Caller(subject=str(claims["sub"]), tenant_id=tenant, roles=frozenset(roles), token=token)
