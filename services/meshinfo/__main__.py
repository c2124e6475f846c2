"""python -m services.meshinfo: health and reflection for the whole mesh."""

from __future__ import annotations

import uvloop

from services.meshinfo.server import serve
from services.runtime import logs
from services.runtime.settings import load_settings


def main() -> None:
    settings = load_settings()
    logs.configure("meshinfo", settings.log_level, settings.log_format)
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
