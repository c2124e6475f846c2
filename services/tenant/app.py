"""Wiring of the tenant service: database (platform schema + one schema per
tenant), signing keys, token issuer and verifier, provisioning, servicer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from commerce.tenant.v1 import tenant_pb2_grpc

from services.runtime.bootstrap import open_database
from services.runtime.db import Database
from services.runtime.migrations import upgrade_schema
from services.runtime.server import App
from services.runtime.settings import Settings
from services.runtime.tokens import Jwk, KeySet, TokenVerifier
from services.tenant import migrations
from services.tenant.accounts import Accounts
from services.tenant.issuer import TokenIssuer
from services.tenant.keys import KeyStore
from services.tenant.passwords import Passwords
from services.tenant.provisioner import Provisioner
from services.tenant.servicer import SERVICE, TenantServicer
from services.tenant.store.platform import SCHEMA, PlatformStore
from services.tenant.tenants import Tenants

NAME = "tenant"


@dataclass
class Parts:
    """The adapters build() wires, for the CLI and for tests that need one directly."""

    db: Database
    platform: PlatformStore
    keys: KeyStore
    issuer: TokenIssuer
    passwords: Passwords


async def open_parts(settings: Settings) -> Parts:
    db = await open_database(settings, NAME, migrations.TENANT)
    await upgrade_schema(db, SCHEMA, migrations.PLATFORM)
    keys = KeyStore(settings.keys_dir, settings.keys_reload_seconds)
    keys.ensure_key()
    issuer = TokenIssuer(keys, settings.jwt_issuer, settings.jwt_audience,
                         settings.access_token_ttl_seconds, settings.guest_token_ttl_seconds)
    return Parts(db, PlatformStore(db), keys, issuer, Passwords())


def local_verifier(settings: Settings, keys: KeyStore) -> TokenVerifier:
    """Verifies tokens against this service's own key store (no network)."""

    async def fetch() -> Sequence[Jwk]:
        return keys.jwks()

    return TokenVerifier(KeySet(fetch, settings.keys_reload_seconds), settings.jwt_issuer, settings.jwt_audience)


async def build(settings: Settings) -> App:
    parts = await open_parts(settings)
    await parts.passwords.prepare()
    targets = [(name, settings.address_of(name)) for name in settings.provision_services]
    provisioner = Provisioner(parts.db, parts.platform, migrations.TENANT, targets, parts.issuer.service_token,
                              settings.provision_retry_seconds)
    servicer = TenantServicer(Tenants(parts.platform, provisioner),
                              Accounts(parts.db, parts.platform, parts.passwords, parts.issuer), parts.keys)

    def register(server: grpc.aio.Server) -> None:
        tenant_pb2_grpc.add_TenantServiceServicer_to_server(servicer, server)

    return App(
        name=NAME, services=[SERVICE], register=register, verifier=local_verifier(settings, parts.keys),
        probes={"database": parts.db.ping}, on_start=[provisioner.start],
        on_stop=[provisioner.stop, parts.db.dispose],
    )
