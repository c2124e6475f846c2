"""Tokens as the tenant service issues them, signed with the mesh's own newest key (the
PEM files in its keys folder), and then spoiled one way each, with the reason the edge
and every service give for each (services/edge/refusals.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from services.devmesh.mesh import Mesh
from services.tenant.keys import KeyStore, SigningKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segments(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


class Minter:
    """Tokens as the tenant service issues them, signed with the mesh's own newest key."""

    def __init__(self, mesh: Mesh, tenant_id: str, subject: str) -> None:
        self.settings = mesh.settings
        self.key: SigningKey = KeyStore(mesh.settings.keys_dir).signing_key()
        self.tenant_id = tenant_id
        self.subject = subject

    def claims(self, **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": self.subject, "tenant": self.tenant_id, "roles": ["seller"], "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience, "iat": now, "nbf": now, "exp": now + 600, "jti": str(uuid.uuid4())}
        claims.update(changes)
        return claims

    def rs256(self, claims: dict[str, Any], kid: str | None = None,
              key: rsa.RSAPrivateKey | None = None) -> str:
        return jwt.encode(claims, key or self.key.private_key, algorithm="RS256", headers={"kid": kid or self.key.kid})

    def valid(self) -> str:
        return self.rs256(self.claims())

    def public_pem(self) -> bytes:
        return self.key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def alg_none(m: Minter) -> str:
    return _segments({"alg": "none", "typ": "JWT", "kid": m.key.kid}, m.claims()) + "."


def hs256_with_public_key(m: Minter) -> str:
    """The classic confusion attack: HMAC keyed with the (public) RSA key, same kid."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": m.key.kid}, m.claims())
    signature = hmac.new(m.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def unknown_kid(m: Minter) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return m.rs256(m.claims(), kid=f"unknown-{uuid.uuid4().hex[:8]}", key=stranger)


def known_kid_foreign_key(m: Minter) -> str:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return m.rs256(m.claims(), key=stranger)


def wrong_issuer(m: Minter) -> str:
    return m.rs256(m.claims(iss="https://evil.example"))


def wrong_audience(m: Minter) -> str:
    return m.rs256(m.claims(aud="someone-else"))


def expired(m: Minter) -> str:
    now = int(time.time())
    return m.rs256(m.claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600))


def not_yet_valid(m: Minter) -> str:
    now = int(time.time())  # well beyond the clock-skew leeway (30 s, at the edge and the services)
    return m.rs256(m.claims(iat=now, nbf=now + 3600, exp=now + 7200))


def unknown_algorithm(m: Minter) -> str:
    """A header naming an algorithm nobody implements, with a signature of the right shape."""
    return _segments({"alg": "XYZ", "typ": "JWT", "kid": m.key.kid}, m.claims()) + "." + _b64(b"not a signature")


def tampered_claims(m: Minter) -> str:
    """A genuine token whose payload was changed (admin role, other tenant), signature kept."""
    header, _, signature = m.valid().split(".")
    payload = _b64(json.dumps(m.claims(roles=["admin"], tenant="platform")).encode())
    return f"{header}.{payload}.{signature}"


def expired_and_tampered(m: Minter) -> str:
    """An expired token whose signature was changed too: expiry is checked first, at the edge and the services."""
    header, payload, signature = expired(m).split(".")
    return f"{header}.{payload}.{signature[:-4]}AAAA"


# Each bad token and the reason the edge and every service give for it (services/edge/refusals.py).
BAD_TOKENS: dict[str, tuple[Callable[[Minter], str], str]] = {
    "alg none": (alg_none, "MALFORMED_TOKEN"),  # no signature part: not `Bearer <JWT>`
    "unknown algorithm": (unknown_algorithm, "BAD_ALGORITHM"),
    "HS256 keyed with the public key": (hs256_with_public_key, "UNKNOWN_KEY"),
    "unknown kid": (unknown_kid, "UNKNOWN_KEY"),
    "known kid, other key": (known_kid_foreign_key, "BAD_SIGNATURE"),
    "wrong issuer": (wrong_issuer, "WRONG_ISSUER"),
    "wrong audience": (wrong_audience, "WRONG_AUDIENCE"),
    "expired": (expired, "TOKEN_EXPIRED"),
    "expired, signature changed": (expired_and_tampered, "TOKEN_EXPIRED"),
    "not yet valid": (not_yet_valid, "TOKEN_NOT_YET_VALID"),
    "tampered claims": (tampered_claims, "BAD_SIGNATURE"),
}
