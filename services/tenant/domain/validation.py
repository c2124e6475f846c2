"""The tenant service's own field checks (email addresses, passwords), on the shared
``Violations`` (services/runtime/validation.py): each returns the cleaned value or
records a violation naming the field."""

from __future__ import annotations

import re

from services.runtime.validation import Violations, control_characters

_EMAIL = re.compile(r"^[^@\s]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")
EMAIL_MAX = 254
PASSWORD_MIN, PASSWORD_MAX = 10, 128


def email(v: Violations, field: str, value: str) -> str:
    """A lower-cased email address (compared case-insensitively everywhere)."""
    lowered = value.lower()
    if not lowered:
        v.add(field, "is required")
    elif len(value) > EMAIL_MAX:
        v.add(field, f"must be at most {EMAIL_MAX} characters (got {len(value)})")
    elif control_characters(value) or not _EMAIL.fullmatch(lowered):
        v.add(field, "must be an email address like name@example.com")
    return lowered


def new_password(v: Violations, field: str, value: str) -> str:
    if len(value) < PASSWORD_MIN:
        v.add(field, f"must be at least {PASSWORD_MIN} characters")
    elif len(value) > PASSWORD_MAX:
        v.add(field, f"must be at most {PASSWORD_MAX} characters (got {len(value)})")
    elif control_characters(value):
        v.add(field, "must not contain control characters")
    return value


def given_password(v: Violations, field: str, value: str) -> str:
    """A password presented at login: only shape is checked, never the policy."""
    if not value:
        v.add(field, "is required")
    elif len(value) > PASSWORD_MAX:
        v.add(field, f"must be at most {PASSWORD_MAX} characters (got {len(value)})")
    elif control_characters(value):
        v.add(field, "must not contain control characters")
    return value
