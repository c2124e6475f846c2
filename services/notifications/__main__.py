"""python -m services.notifications: the notifications worker (order emails over SMTP)."""

from __future__ import annotations

from services.notifications.app import build
from services.runtime.server import run_service

if __name__ == "__main__":
    run_service("notifications", build)
