"""Issuing access tokens: RS256 JWTs signed with the newest key of the KeyStore.

Claims: sub, tenant, roles, iss, aud, exp, iat, nbf, jti; header kid.
- staff and customers: sub = user id, roles = [their role], tenant = their tenant;
- platform admins: tenant "platform", roles ["admin"];
- guests: sub "guest:<random id>", roles ["guest"];
- the tenant service itself (provisioning calls): sub "service:tenant",
  tenant "platform", roles ["service"], short-lived.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import jwt

from services.runtime.context import ADMIN, GUEST, PLATFORM_TENANT, SERVICE
from services.tenant.keys import KeyStore

SERVICE_SUBJECT = "service:tenant"
SERVICE_TOKEN_TTL_SECONDS = 300
_SERVICE_TOKEN_MIN_LEFT_SECONDS = 60


@dataclass(frozen=True)
class IssuedToken:
    token: str
    subject: str
    expires_in: int
    expires_at: float


class TokenIssuer:
    def __init__(self, keys: KeyStore, issuer: str, audience: str, access_ttl: int, guest_ttl: int) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._access_ttl = access_ttl
        self._guest_ttl = guest_ttl
        self._service_token: IssuedToken | None = None

    def issue(self, subject: str, tenant: str, roles: Sequence[str], ttl: int) -> IssuedToken:
        key = self._keys.signing_key()
        now = int(time.time())
        claims = {
            "sub": subject, "tenant": tenant, "roles": list(roles),
            "iss": self._issuer, "aud": self._audience,
            "iat": now, "nbf": now, "exp": now + ttl, "jti": str(uuid.uuid4()),
        }
        token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
        return IssuedToken(token, subject, ttl, float(now + ttl))

    def for_user(self, user_id: str, tenant_id: str, role: str) -> IssuedToken:
        return self.issue(user_id, tenant_id, [role], self._access_ttl)

    def for_admin(self, admin_id: str) -> IssuedToken:
        return self.issue(admin_id, PLATFORM_TENANT, [ADMIN], self._access_ttl)

    def for_guest(self, tenant_id: str) -> IssuedToken:
        return self.issue(f"guest:{secrets.token_hex(16)}", tenant_id, [GUEST], self._guest_ttl)

    def service_token(self) -> str:
        """A short-lived token for the tenant service's own calls (reused until near expiry)."""
        current = self._service_token
        if current is None or current.expires_at - time.time() < _SERVICE_TOKEN_MIN_LEFT_SECONDS:
            current = self.issue(SERVICE_SUBJECT, PLATFORM_TENANT, [SERVICE], SERVICE_TOKEN_TTL_SECONDS)
            self._service_token = current
        return current.token
