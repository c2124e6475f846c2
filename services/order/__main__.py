"""python -m services.order: the order service (checkout saga and order lifecycle)."""

from __future__ import annotations

from services.order.app import build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("order", build)
