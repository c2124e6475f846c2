"""Signing keys: generated on first start and readable only by the service; kid is
the RFC 7638 thumbprint; a key added to the folder signs new tokens without a
restart, while tokens of the older key keep verifying."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import jwt
import pytest
from commerce.tenant.v1 import tenant_pb2
from cryptography.hazmat.primitives.asymmetric import rsa

from services.tenant.keys import KeyStore, thumbprint
from tests.tenant.conftest import Mesh
from tests.tenant.harness import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, eventually

PREFIX = "tt5"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_kid_is_the_rfc_7638_thumbprint() -> None:
    # The example of RFC 7638, section 3.1.
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
         "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZ"
         "Hzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kE"
         "gU8awapJzKnqDKgw")
    assert thumbprint(n, "AQAB") == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


async def test_first_start_generates_one_key_readable_only_by_the_service(mesh: Mesh) -> None:
    folder = mesh.settings.keys_dir
    files = sorted(folder.glob("*.pem"))
    assert len(files) == 1
    assert _mode(folder) == 0o700
    assert _mode(files[0]) == 0o600
    jwks = await mesh.client.stub.GetJwks(tenant_pb2.GetJwksRequest())
    (key,) = jwks.keys
    assert (key.kty, key.alg, key.use, key.e) == ("RSA", "RS256", "sig", "AQAB")
    assert key.kid == thumbprint(key.n, key.e)
    assert len(jwt.utils.base64url_decode(key.n)) == 256  # RSA-2048
    assert jwt.get_unverified_header(mesh.admin)["kid"] == key.kid


async def test_an_added_key_signs_new_tokens_while_old_tokens_still_verify(mesh: Mesh) -> None:
    old_token = mesh.admin
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    added = KeyStore(mesh.settings.keys_dir).add_key()
    assert added.kid != old_kid

    async def signs_with_new_key() -> bool:
        token = await mesh.client.login("platform", ADMIN_EMAIL, ADMIN_PASSWORD)
        return bool(jwt.get_unverified_header(token)["kid"] == added.kid)

    await eventually(signs_with_new_key)
    new_token = await mesh.client.login("platform", ADMIN_EMAIL, ADMIN_PASSWORD)
    jwks = await mesh.client.stub.GetJwks(tenant_pb2.GetJwksRequest())
    assert {k.kid for k in jwks.keys} == {old_kid, added.kid}
    for token in (old_token, new_token):
        # Accepted by the service itself ...
        await mesh.client.stub.ListTenants(tenant_pb2.ListTenantsRequest(), metadata=bearer(token))
        # ... and by anyone holding the JWKS.
        kid = jwt.get_unverified_header(token)["kid"]
        jwk = next(k for k in jwks.keys if k.kid == kid)
        key = jwt.PyJWK({"kty": jwk.kty, "kid": jwk.kid, "alg": jwk.alg, "n": jwk.n, "e": jwk.e})
        jwt.decode(token, key, algorithms=["RS256"], audience=mesh.settings.jwt_audience)
    # Provisioning (service token to the catalog-like target) still works after the rotation.
    assert (await mesh.create_tenant()).state == tenant_pb2.TENANT_STATE_ACTIVE


def test_the_newest_key_file_signs_and_unreadable_files_are_skipped(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys", reload_seconds=0)
    first = store.ensure_key()
    assert store.ensure_key().kid == first.kid  # not regenerated while a key exists
    (tmp_path / "keys" / "zzz-garbage.pem").write_text("not a key")
    assert store.signing_key().kid == first.kid
    second = store.add_key()
    assert store.signing_key().kid == second.kid
    assert [k["kid"] for k in store.jwks()] == [first.kid, second.kid]
    assert isinstance(second.private_key, rsa.RSAPrivateKey) and second.private_key.key_size == 2048


def test_a_running_store_looks_at_the_folder_at_most_every_reload_interval(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    slow = KeyStore(folder, reload_seconds=3600)
    first = slow.ensure_key()
    KeyStore(folder).add_key()  # another process rotates
    assert slow.signing_key().kid == first.kid
    assert len(KeyStore(folder, reload_seconds=0).jwks()) == 2


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_new_key_is_published_at_once_but_signs_only_once_it_is_old_enough(tmp_path: Path) -> None:
    clock = Clock(time.time())
    store = KeyStore(tmp_path / "keys", reload_seconds=0, activation_seconds=40, clock=clock)
    first = store.ensure_key()
    assert store.signing_key().kid == first.kid, "the only key signs at once, though it is new"
    second = store.add_key()
    assert [k["kid"] for k in store.jwks()] == [first.kid, second.kid], "published at once"
    assert store.signing_key().kid == first.kid, "the edge may not know the new key yet"
    assert store.signs_from(second) == pytest.approx(second.created + 40)
    clock.now = store.signs_from(second) - 0.5
    assert store.signing_key().kid == first.kid
    clock.now = store.signs_from(second)
    assert store.signing_key().kid == second.kid


def test_a_key_file_named_otherwise_is_as_old_as_its_mtime(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    store = KeyStore(folder, reload_seconds=0, activation_seconds=40)
    first = store.ensure_key()
    renamed = folder / "operator-key.pem"
    first.path.rename(renamed)
    os.utime(renamed, (time.time() - 3600, time.time() - 3600))
    (loaded,) = KeyStore(folder, reload_seconds=0).jwks()
    assert loaded["kid"] == first.kid
    assert abs(KeyStore(folder, reload_seconds=0).signing_key().created - (time.time() - 3600)) < 5
