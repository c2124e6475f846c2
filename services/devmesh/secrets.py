"""Development secrets of `make run`: generated once into <data>/secrets (mode 0600),
never in the repository. A secret set in the environment wins."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr

from services.runtime.settings import Settings

# Settings field -> file name under <data>/secrets.
DEV_SECRETS = ("service_secret", "payment_webhook_secret")


def _load_or_create(path: Path) -> str:
    if path.exists():
        value = path.read_text().strip()
        if value:
            return value
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    value = secrets.token_urlsafe(32)
    path.touch(mode=0o600)
    path.write_text(value + "\n")
    return value


def dev_secrets(settings: Settings, folder: Path) -> dict[str, SecretStr]:
    """Settings updates for the secrets ``settings`` leaves empty."""
    out: dict[str, SecretStr] = {}
    for name in DEV_SECRETS:
        current: SecretStr = getattr(settings, name)
        if not current.get_secret_value():
            out[name] = SecretStr(_load_or_create(folder / name))
    return out
