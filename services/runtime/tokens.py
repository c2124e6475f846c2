"""Verifying access tokens (RS256 JWTs issued by the tenant service).

Every service verifies tokens itself, because internal callers bypass Envoy.
Public keys come from a JWKS source: the tenant service's key store in-process,
or its GetJwks RPC for every other service (refreshed periodically and on an
unknown ``kid``). A token whose signature holds is still refused when its
tenant was suspended or its user deleted after it was issued
(services/runtime/revocations.py).

The edge (Envoy's jwt_authn, services/edge/render.py) checks tokens too, and both must
agree: the same ``authorization`` syntax (BEARER_PATTERN, the edge's token gate uses
it), the same clock skew, and a bad token gets the same reason in the same order of
checks as jwt_authn makes them (alg, issuer, nbf, exp, audience, key, signature): the
reasons of services/edge/refusals.py.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import jwt
from jwt.algorithms import RSAAlgorithm

from services.runtime.context import ADMIN, SERVICE, Caller
from services.runtime.errors import Unauthenticated, Unavailable
from services.runtime.revocations import RevocationFeed

Jwk = Mapping[str, str]
JwksFetcher = Callable[[], Awaitable[Sequence[Jwk]]]
TOKEN_LEEWAY_SECONDS = 30
# `authorization: Bearer <JWT>` (RFC 6750: the scheme in any case, then spaces): the one rule the
# edge and every service apply. RE2 and Python read it alike (Envoy matches it in full).
BEARER_PATTERN = r"(?i:bearer) +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)"
BEARER = re.compile(BEARER_PATTERN)
MALFORMED_MESSAGE = "authorization must be 'Bearer <token>' with a well-formed JWT (three base64url parts)"
# The algorithms Envoy's jwt_authn can verify: another one is BAD_ALGORITHM, one of these but RS256 UNKNOWN_KEY
# (no published key has it), as at the edge.
_KNOWN_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                               "HS256", "HS384", "HS512", "EdDSA"})


def bearer_token(value: str) -> str:
    """The token of an ``authorization`` value, or Unauthenticated MALFORMED_TOKEN."""
    match = BEARER.fullmatch(value)
    if match is None:
        raise Unauthenticated(MALFORMED_MESSAGE, reason="MALFORMED_TOKEN")
    return match.group(1)


def _unknown_key() -> Unauthenticated:
    return Unauthenticated("no published signing key matches the token's kid and alg", reason="UNKNOWN_KEY")
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
            raise _unknown_key()
        return key

    async def refresh(self) -> None:
        async with self._lock:
            try:
                jwks = await self._fetch()
            except Exception as exc:  # keep the old keys; the token may still verify
                if not self._keys:
                    raise Unavailable(f"the signing keys cannot be fetched right now: retry ({exc})",
                                      reason="KEYS_UNAVAILABLE") from exc
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
        """The claims, checked in jwt_authn's order (so the edge and the service give the same reason)."""
        header, unverified = _unverified(token)
        alg = header.get("alg")
        if alg not in _KNOWN_ALGORITHMS:
            raise Unauthenticated("the token's alg is not supported: tokens are RS256", reason="BAD_ALGORITHM")
        _check_claims(unverified, self._issuer, self._audience)
        if alg != "RS256":
            raise _unknown_key()
        key = await self._keys.key_for(str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=["RS256"], audience=self._audience, issuer=self._issuer,
                leeway=TOKEN_LEEWAY_SECONDS, options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except (jwt.InvalidSignatureError, jwt.DecodeError) as exc:  # header and claims were read: the signature
            raise Unauthenticated("the token's signature does not verify", reason="BAD_SIGNATURE") from exc
        except jwt.ExpiredSignatureError as exc:  # expired since the check above
            raise Unauthenticated("the token has expired: log in again for a new one", reason="TOKEN_EXPIRED") from exc
        except jwt.PyJWTError as exc:  # a required claim is missing, or a claim has the wrong type
            raise Unauthenticated(f"{MALFORMED_MESSAGE}: {exc}", reason="MALFORMED_TOKEN") from exc
        return claims


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, read without the signature (whose bytes only the verification reads)."""
    try:
        header_b64, payload_b64, _ = token.split(".")
        header, claims = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
                          for part in (header_b64, payload_b64))
    except (ValueError, binascii.Error) as exc:
        raise Unauthenticated(f"{MALFORMED_MESSAGE}: {exc}", reason="MALFORMED_TOKEN") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise Unauthenticated(f"{MALFORMED_MESSAGE}: header and claims must be JSON objects", reason="MALFORMED_TOKEN")
    return header, claims


def _check_claims(claims: Mapping[str, Any], issuer: str, audience: str) -> None:
    """Issuer, nbf, exp and audience of a token whose signature is not checked yet."""
    now = time.time()
    if claims.get("iss") != issuer:
        raise Unauthenticated("the token was not issued by this mesh (iss)", reason="WRONG_ISSUER")
    nbf, exp = claims.get("nbf", 0), claims.get("exp")
    if not isinstance(nbf, int) or not isinstance(exp, int):
        raise Unauthenticated(f"{MALFORMED_MESSAGE}: exp and nbf must be integers", reason="MALFORMED_TOKEN")
    if now + TOKEN_LEEWAY_SECONDS < nbf:
        raise Unauthenticated("the token is not valid yet (nbf)", reason="TOKEN_NOT_YET_VALID")
    if now > exp + TOKEN_LEEWAY_SECONDS:
        raise Unauthenticated("the token has expired: log in again for a new one", reason="TOKEN_EXPIRED")
    aud = claims.get("aud")
    if audience not in ([aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []):
        raise Unauthenticated("the token is meant for another audience (aud)", reason="WRONG_AUDIENCE")


def _caller_from(claims: Mapping[str, Any], token: str) -> Caller:
    roles = claims.get("roles")
    tenant = claims.get("tenant")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated(f"{MALFORMED_MESSAGE}: no roles claim", reason="MALFORMED_TOKEN")
    if not isinstance(tenant, str) or not tenant:
        raise Unauthenticated(f"{MALFORMED_MESSAGE}: no tenant claim", reason="MALFORMED_TOKEN")
    return Caller(subject=str(claims["sub"]), tenant_id=tenant, roles=frozenset(roles), token=token)
