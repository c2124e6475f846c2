"""Operator commands of the tenant service (``python -m services.tenant <command>``)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from datetime import UTC, datetime

from services.runtime.settings import load_settings
from services.runtime.validation import Violations
from services.tenant.app import open_platform
from services.tenant.domain import validation
from services.tenant.keys import KeyStore
from services.tenant.passwords import Passwords


def _password(env_var: str | None) -> str:
    if env_var:
        value = os.environ.get(env_var)
        if not value:
            raise SystemExit(f"environment variable {env_var} is not set or empty")
        return value
    if not sys.stdin.isatty():
        raise SystemExit("no terminal to ask for the password: pass --password-env VAR")
    first = getpass.getpass("password for the platform admin: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("the two passwords differ; nothing done")
    return first


async def create_admin(email: str, password_env: str | None, display_name: str, reset: bool) -> int:
    v = Violations()
    clean_email = validation.email(v, "email", email)
    v.text("display-name", display_name, max_len=200, required=False, trimmed=True)
    try:
        v.raise_if_any()
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    platform = await open_platform(load_settings())
    try:
        existing = await platform.admin_by_email(clean_email)
        if existing is not None and not reset:
            print(f"platform admin {clean_email} already exists; password unchanged (use --reset to set a new one)")
            return 0
        password = _password(password_env)
        checked = Violations()
        validation.new_password(checked, "password", password)
        try:
            checked.raise_if_any()
        except Exception as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        password_hash = await Passwords().hash(password)
        if existing is not None:
            await platform.set_admin_password(existing.admin_id, password_hash)
            print(f"platform admin {clean_email}: password reset")
        elif await platform.insert_admin(clean_email, display_name, password_hash) is None:
            print(f"platform admin {clean_email} was created concurrently; password unchanged", file=sys.stderr)
            return 1
        else:
            print(f"platform admin {clean_email} created; log in with tenant_id \"platform\"")
        return 0
    finally:
        await platform.db.dispose()


def rotate_key() -> int:
    settings = load_settings()
    store = KeyStore(settings.keys_dir, activation_seconds=settings.key_activation_seconds())
    key = store.add_key()
    starts = datetime.fromtimestamp(store.signs_from(key), UTC).isoformat(timespec="seconds")
    print(f"new signing key {key.kid} in {key.path}: published in the JWKS within {settings.keys_reload_seconds:g}s, "
          f"signing from {starts} ({settings.key_activation_seconds():g}s from now, once every verifier's cached "
          f"JWKS has it); earlier keys stay published until their files are removed")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.tenant",
                                     description="Serve the tenant service (no command), or run an operator command.")
    commands = parser.add_subparsers(dest="command")
    admin = commands.add_parser("create-admin", help="create the platform admin (or reset its password)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password-env", metavar="VAR", help="read the password from this environment variable")
    admin.add_argument("--display-name", default="")
    admin.add_argument("--reset", action="store_true", help="if the admin exists, set the new password")
    commands.add_parser("rotate-key", help="add a new signing key (published now, signing once the edge knows it)")
    args = parser.parse_args(argv)
    if args.command == "create-admin":
        return asyncio.run(create_admin(args.email, args.password_env, args.display_name, args.reset))
    if args.command == "rotate-key":
        return rotate_key()
    from services.runtime.server import run_service
    from services.tenant.app import build

    run_service("tenant", build)
    return 0
