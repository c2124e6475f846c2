"""python -m services.catalog: the catalog service (products and stock)."""

from __future__ import annotations

from services.catalog.app import build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("catalog", build)
