"""Test access tokens: a throw-away RSA key, the TokenVerifier a service under
test uses with it, and tokens minted with PyJWT the way the tenant service does
(claims sub, tenant, roles, iss, aud, exp, iat; RS256 with a ``kid``).

    keys = TestKeys()
    server_app = assemble(db, keys.verifier())
    metadata = keys.metadata(tenant="acme", roles=["seller"])
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.runtime.tokens import Jwk, KeySet, TokenVerifier

ISSUER = "commerce-mesh"
AUDIENCE = "commerce-mesh"


class TestKeys:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, issuer: str = ISSUER, audience: str = AUDIENCE) -> None:
        self.issuer = issuer
        self.audience = audience
        self.kid = f"test-{uuid.uuid4().hex[:8]}"
        self._private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self._private.public_key()))
        self.jwk: dict[str, str] = {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    async def _fetch(self) -> Sequence[Jwk]:
        return [self.jwk]

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(KeySet(self._fetch), self.issuer, self.audience)

    def mint(self, *, tenant: str, roles: Sequence[str], sub: str | None = None,
             ttl_seconds: int = 600, **claims: Any) -> str:
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": sub or f"user-{uuid.uuid4().hex[:8]}", "tenant": tenant, "roles": list(roles),
            "iss": self.issuer, "aud": self.audience, "iat": now, "exp": now + ttl_seconds, **claims,
        }
        return jwt.encode(payload, self._private, algorithm="RS256", headers={"kid": self.kid})

    def metadata(self, *, tenant: str, roles: Sequence[str], **kwargs: Any) -> tuple[tuple[str, str], ...]:
        """gRPC call metadata carrying a fresh token."""
        return (("authorization", f"Bearer {self.mint(tenant=tenant, roles=roles, **kwargs)}"),)
