"""python -m services.migrate [SERVICE ...]: see services/migrate/__init__.py."""

from __future__ import annotations

import asyncio
import sys
import time

import structlog

from services.migrate import STEPS
from services.runtime import logs
from services.runtime.bootstrap import migrate_database
from services.runtime.settings import Settings, load_settings

log = structlog.get_logger("commerce.migrate")


async def _run(settings: Settings, services: list[str]) -> None:
    for service in services:
        started = time.monotonic()
        scripts, extra = STEPS[service]
        migrated = await migrate_database(settings, service, scripts, extra)
        log.info("migrated", service=service, database=settings.database_name(service), tenant_schemas=migrated,
                 seconds=round(time.monotonic() - started, 3))


def main(argv: list[str]) -> int:
    settings = load_settings()
    logs.configure("migrate", settings.log_level, settings.log_format)
    unknown = [name for name in argv if name not in STEPS]
    if unknown or "-h" in argv or "--help" in argv:
        print(__doc__.replace("see services/migrate/__init__.py", "services: " + ", ".join(STEPS)), file=sys.stderr)
        return 0 if not unknown else 2
    asyncio.run(_run(settings, argv or list(STEPS)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
