"""Wiring of the tenant service: database (platform schema + one schema per
tenant), signing keys, token issuer and verifier, provisioning, servicer."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from commerce.tenant.v1 import service_token_pb2_grpc, tenant_pb2_grpc

from services.runtime.bootstrap import open_database, revocation_feed
from services.runtime.events.relay import OutboxRelay
from services.runtime.server import App
from services.runtime.settings import Settings
from services.runtime.tokens import Jwk, KeySet, TokenVerifier
from services.tenant import migrations
from services.tenant.accounts import Accounts
from services.tenant.issuer import TokenIssuer
from services.tenant.keys import KeyStore
from services.tenant.passwords import Passwords
from services.tenant.provisioner import Provisioner
from services.tenant.service_tokens import SERVICE_DESCRIPTOR, ServiceTokenServicer
from services.tenant.servicer import SERVICE, TenantServicer
from services.tenant.store.platform import SCHEMA, PlatformStore
from services.tenant.tenants import Tenants

NAME = "tenant"


async def open_platform(settings: Settings) -> PlatformStore:
    """The tenant database, created if needed, with the platform schema and every
    tenant schema at the latest revision."""
    db = await open_database(settings, NAME, migrations.TENANT, {SCHEMA: migrations.PLATFORM})
    return PlatformStore(db)


def local_verifier(settings: Settings, keys: KeyStore) -> TokenVerifier:
    """Verifies tokens against this service's own key store (no network); revocations
    come over NATS like everywhere else."""

    async def fetch() -> Sequence[Jwk]:
        return keys.jwks()

    return TokenVerifier(KeySet(fetch, settings.keys_reload_seconds), settings.jwt_issuer, settings.jwt_audience,
                         revocations=revocation_feed(settings, NAME))


async def build(settings: Settings) -> App:
    platform = await open_platform(settings)
    db = platform.db
    keys = KeyStore(settings.keys_dir, settings.keys_reload_seconds, settings.key_activation_seconds())
    keys.ensure_key()
    issuer = TokenIssuer(keys, settings.jwt_issuer, settings.jwt_audience,
                         settings.access_token_ttl_seconds, settings.guest_token_ttl_seconds)
    passwords = Passwords(concurrency=settings.login_hash_concurrency,
                          queue_seconds=settings.login_queue_seconds)
    await passwords.prepare()
    targets = [(name, settings.address_of(name)) for name in settings.provision_services]
    provisioner = Provisioner(db, platform, migrations.TENANT, targets, issuer.service_token,
                              settings.provision_retry_seconds)
    servicer = TenantServicer(Tenants(platform, provisioner), Accounts(db, platform, passwords, issuer), keys)
    service_tokens = ServiceTokenServicer(issuer, settings.service_secret)
    relay = OutboxRelay(db, settings, extra_schemas=(SCHEMA,))

    def register(server: grpc.aio.Server) -> None:
        tenant_pb2_grpc.add_TenantServiceServicer_to_server(servicer, server)
        service_token_pb2_grpc.add_ServiceTokenServiceServicer_to_server(service_tokens, server)

    return App(
        name=NAME, services=[SERVICE, SERVICE_DESCRIPTOR], register=register, verifier=local_verifier(settings, keys),
        probes={"database": db.ping}, facets=db.facets(), on_start=[provisioner.start, relay.start],
        on_stop=[relay.stop, provisioner.stop, db.dispose, passwords.close],
    )
