"""Wiring shared by the services' ``build()``: their database (created and
migrated for every existing tenant) and a token verifier fed by the tenant
service's JWKS."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import structlog

from services.runtime.db import Database, ensure_database
from services.runtime.events.connection import NatsAuth
from services.runtime.jwks_client import remote_jwks
from services.runtime.migrations import check_all, require_current, upgrade_all, upgrade_schema
from services.runtime.revocations import RevocationFeed, RevocationList
from services.runtime.settings import Settings
from services.runtime.tokens import TOKEN_LEEWAY_SECONDS, KeySet, TokenVerifier

log = structlog.get_logger("commerce.bootstrap")


async def open_database(settings: Settings, service: str, script_location: Path,
                        extra_schemas: Mapping[str, Path] | None = None) -> Database:
    """The service's database. With ``migrate_on_start`` (make run, the tests) it is created,
    each of ``extra_schemas`` (e.g. the tenant service's ``platform``) brought to the latest
    revision, tenant schemas at the latest revision served at once and those behind migrated in
    the background (migrations.check_all); without (a deployment: the migration step did that),
    a schema older than this code needs stops the start with migrations.SchemaBehind."""
    name = settings.database_name(service)
    db = Database(settings.database_url, name, settings.pool_size_of(service), settings.health_probe_timeout_seconds,
                  settings.database_listen_url, settings.migration_database_url)
    if settings.migrate_on_start:
        await ensure_database(settings.migration_database_url or settings.database_url, name)
        for schema, scripts in (extra_schemas or {}).items():
            await upgrade_schema(db, schema, scripts)
        ready, behind = await check_all(db, script_location)
        log.info("database ready", database=name, tenant_schemas=ready + behind, to_migrate=behind)
        return db
    for schema, scripts in (extra_schemas or {}).items():
        await require_current(db, scripts, [schema])
    checked = await require_current(db, script_location)
    log.info("database ready (migrated by the migration step)", database=name, tenant_schemas=checked)
    return db


async def migrate_database(settings: Settings, service: str, script_location: Path,
                           extra_schemas: Mapping[str, Path] | None = None) -> int:
    """The migration step for one service: its database created, ``extra_schemas`` and every
    tenant schema at the latest revision, as the DDL role. Returns the tenant schemas migrated."""
    name = settings.database_name(service)
    url = settings.migration_database_url or settings.database_url
    await ensure_database(url, name)
    db = Database(url, name, 1)  # its DDL engine is this one
    try:
        for schema, scripts in (extra_schemas or {}).items():
            await upgrade_schema(db, schema, scripts)
        return await upgrade_all(db, script_location)
    finally:
        await db.dispose()


def revocation_feed(settings: Settings, name: str) -> RevocationFeed:
    """Suspended tenants and deleted users, remembered as long as any token can live."""
    longest = max(settings.access_token_ttl_seconds, settings.guest_token_ttl_seconds) + TOKEN_LEEWAY_SECONDS
    return RevocationFeed(RevocationList(longest), settings.nats_url, name, settings.nats_stream_replicas,
                          NatsAuth.of(settings))


def remote_verifier(settings: Settings, name: str = "service") -> TokenVerifier:
    keys = KeySet(remote_jwks(settings.address_of("tenant")), settings.jwks_refresh_seconds)
    return TokenVerifier(keys, settings.jwt_issuer, settings.jwt_audience,
                         revocations=revocation_feed(settings, name))
