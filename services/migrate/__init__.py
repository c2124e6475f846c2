"""The migration step: every service's database created and every schema in it brought to the
latest revision, as the role that may change schemas (COMMERCE_MIGRATION_DATABASE_URL, else
DATABASE_URL). Run it before rolling out a release whose services have ``migrate_on_start``
off (the Kubernetes Job ``migrate``, the compose service ``migrate``); the rule that lets the
previous release keep serving on the migrated schema is services/runtime/MIGRATIONS.md.

    python -m services.migrate [SERVICE ...]     (default: every service with a database)
"""

from __future__ import annotations

from pathlib import Path

from services.notifications.migrations import SCRIPTS as NOTIFICATIONS
from services.tenant import migrations as tenant_migrations
from services.tenant.store.platform import SCHEMA as PLATFORM_SCHEMA

SERVICES = Path(__file__).resolve().parents[1]
# service -> (tenant schemas' scripts, other schemas and their scripts)
STEPS: dict[str, tuple[Path, dict[str, Path]]] = {
    "tenant": (tenant_migrations.TENANT, {PLATFORM_SCHEMA: tenant_migrations.PLATFORM}),
    "catalog": (SERVICES / "catalog" / "migrations", {}),
    "cart": (SERVICES / "cart" / "migrations", {}),
    "order": (SERVICES / "order" / "migrations", {}),
    "payment": (SERVICES / "payment" / "migrations", {}),
    "notifications": (NOTIFICATIONS, {}),
}
