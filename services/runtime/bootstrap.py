"""Wiring shared by the services' ``build()``: their database (created and
migrated for every existing tenant) and a token verifier fed by the tenant
service's JWKS."""

from __future__ import annotations

from pathlib import Path

import structlog

from services.runtime.db import Database, ensure_database
from services.runtime.jwks_client import remote_jwks
from services.runtime.migrations import upgrade_all
from services.runtime.revocations import RevocationFeed, RevocationList
from services.runtime.settings import Settings
from services.runtime.tokens import TOKEN_LEEWAY_SECONDS, KeySet, TokenVerifier

log = structlog.get_logger("commerce.bootstrap")


async def open_database(settings: Settings, service: str, script_location: Path) -> Database:
    name = settings.database_name(service)
    await ensure_database(settings.database_url, name)
    db = Database(settings.database_url, name, settings.pool_size_of(service), settings.health_probe_timeout_seconds,
                  settings.database_listen_url)
    migrated = await upgrade_all(db, script_location)
    log.info("database ready", database=name, tenant_schemas=migrated)
    return db


def revocation_feed(settings: Settings, name: str) -> RevocationFeed:
    """Suspended tenants and deleted users, remembered as long as any token can live."""
    longest = max(settings.access_token_ttl_seconds, settings.guest_token_ttl_seconds) + TOKEN_LEEWAY_SECONDS
    return RevocationFeed(RevocationList(longest), settings.nats_url, name, settings.nats_stream_replicas)


def remote_verifier(settings: Settings, name: str = "service") -> TokenVerifier:
    keys = KeySet(remote_jwks(settings.address_of("tenant")), settings.jwks_refresh_seconds)
    return TokenVerifier(keys, settings.jwt_issuer, settings.jwt_audience,
                         revocations=revocation_feed(settings, name))
