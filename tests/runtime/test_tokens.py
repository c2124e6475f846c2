"""TokenVerifier on its own (a throw-away key, no servers): the x-tenant-id override and
revocations, which must hold for a token already in the verifier's cache too."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from services.runtime.errors import Unauthenticated
from services.runtime.revocations import RevocationFeed, RevocationList
from services.runtime.tokens import Jwk, KeySet, TokenVerifier
from tests.tokens import TestKeys


@pytest.fixture(scope="module")
def keys() -> TestKeys:
    return TestKeys()


def with_revocations(keys: TestKeys) -> tuple[TokenVerifier, RevocationList]:
    revoked = RevocationList(3600)
    # Never started: the list is fed by hand below instead of from NATS.
    feed = RevocationFeed(revoked, "nats://127.0.0.1:1", "test-tokens")

    async def fetch() -> Sequence[Jwk]:
        return [keys.jwk]
    return TokenVerifier(KeySet(fetch), keys.issuer, keys.audience, revocations=feed), revoked


async def refusal(verifier: TokenVerifier, token: str, tenant_override: str | None = None) -> str:
    try:
        await verifier.verify(token, tenant_override)
    except Unauthenticated as error:
        return error.reason
    return ""


@pytest.mark.parametrize("role", ["owner", "seller", "customer", "guest"])
async def test_a_tenant_token_may_not_name_another_tenant(keys: TestKeys, role: str) -> None:
    verifier = keys.verifier()
    token = keys.mint(tenant="acme", roles=[role])
    assert await refusal(verifier, token, "other") == "TENANT_OVERRIDE_FORBIDDEN"
    caller = await verifier.verify(token, "acme")  # naming its own tenant changes nothing
    assert (caller.tenant_id, caller.roles) == ("acme", frozenset({role}))
    assert await refusal(verifier, token, "other") == "TENANT_OVERRIDE_FORBIDDEN", "refused from the cache too"


@pytest.mark.parametrize("role", ["admin", "service"])
async def test_admin_and_service_tokens_act_in_the_tenant_they_name(keys: TestKeys, role: str) -> None:
    verifier = keys.verifier()
    token = keys.mint(tenant="platform", roles=[role])
    assert (await verifier.verify(token, "acme")).tenant_id == "acme"
    assert (await verifier.verify(token, "shop")).tenant_id == "shop"
    assert (await verifier.verify(token)).tenant_id == "platform", "the override does not stick to the token"


async def test_a_token_already_verified_is_refused_once_its_user_is_deleted(keys: TestKeys) -> None:
    verifier, revoked = with_revocations(keys)
    token = keys.mint(tenant="acme", roles=["seller"], sub="u1")
    other = keys.mint(tenant="acme", roles=["seller"], sub="u2")
    assert (await verifier.verify(token)).subject == "u1"  # now cached
    revoked.revoke_user("acme", "u1", time.time())
    assert await refusal(verifier, token) == "USER_DELETED"
    assert await refusal(verifier, other) == ""


async def test_a_token_already_verified_is_refused_once_its_tenant_is_suspended_even_with_an_override(
        keys: TestKeys) -> None:
    verifier, revoked = with_revocations(keys)
    seller = keys.mint(tenant="acme", roles=["seller"])
    admin = keys.mint(tenant="platform", roles=["admin"])
    await verifier.verify(seller)
    await verifier.verify(admin, "acme")
    revoked.revoke_tenant("acme", time.time())
    assert await refusal(verifier, seller) == "TENANT_SUSPENDED"
    # The platform's admin is not a token of the suspended tenant (the tenant service decides
    # what an admin may still do there).
    assert await refusal(verifier, admin, "acme") == ""
