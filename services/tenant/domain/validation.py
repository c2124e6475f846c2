"""Field checks shared by every request: each returns the cleaned value or records
a violation naming the field, so one INVALID_ARGUMENT lists every bad field."""

from __future__ import annotations

import re
import unicodedata

from services.runtime.errors import FieldViolation, InvalidArgument

# Control characters (C0, DEL, C1) and lone surrogates never belong in a name,
# an email address or a password.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs"})
_EMAIL = re.compile(r"^[^@\s]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$")
EMAIL_MAX = 254
PASSWORD_MIN, PASSWORD_MAX = 10, 128


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in value)


class Violations:
    """Collects field violations; ``raise_if_any`` ends validation."""

    def __init__(self) -> None:
        self._items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._items.append(FieldViolation(field, description))

    def raise_if_any(self) -> None:
        if self._items:
            raise InvalidArgument(self._items)

    def text(self, field: str, value: str, *, max_len: int, required: bool = True) -> str:
        """A human-readable string: not blank when required, at most max_len characters,
        no control characters."""
        if required and not value.strip():
            self.add(field, "is required")
        elif len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters")
        elif has_control_characters(value):
            self.add(field, "must not contain control characters")
        elif value != value.strip():
            self.add(field, "must not start or end with white space")
        return value

    def email(self, field: str, value: str) -> str:
        """A lower-cased email address (compared case-insensitively everywhere)."""
        lowered = value.lower()
        if not lowered:
            self.add(field, "is required")
        elif len(value) > EMAIL_MAX:
            self.add(field, f"must be at most {EMAIL_MAX} characters")
        elif has_control_characters(value) or not _EMAIL.fullmatch(lowered):
            self.add(field, "must be an email address like name@example.com")
        return lowered

    def new_password(self, field: str, value: str) -> str:
        if len(value) < PASSWORD_MIN:
            self.add(field, f"must be at least {PASSWORD_MIN} characters")
        elif len(value) > PASSWORD_MAX:
            self.add(field, f"must be at most {PASSWORD_MAX} characters")
        elif has_control_characters(value):
            self.add(field, "must not contain control characters")
        return value

    def given_password(self, field: str, value: str) -> str:
        """A password presented at login: only shape is checked, never the policy."""
        if not value:
            self.add(field, "is required")
        elif len(value) > PASSWORD_MAX:
            self.add(field, f"must be at most {PASSWORD_MAX} characters")
        elif has_control_characters(value):
            self.add(field, "must not contain control characters")
        return value
