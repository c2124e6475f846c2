"""Field checks that collect violations, so one INVALID_ARGUMENT names every bad
field (as a REST caller spells it: "product.title", "page_token", ...)."""

from __future__ import annotations

import unicodedata

from services.runtime.errors import FieldViolation, InvalidArgument


def control_characters(value: str, allowed: str = "") -> bool:
    """True when ``value`` holds a control character (other than those in ``allowed``)."""
    return any(unicodedata.category(c) == "Cc" and c not in allowed for c in value)


class Violations:
    def __init__(self) -> None:
        self._found: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self._found.append(FieldViolation(field, description))

    def text(self, field: str, value: str, *, max_len: int, required: bool = True, allowed_controls: str = "") -> str:
        """A human-readable string: required means not empty nor blank."""
        if required and not value.strip():
            self.add(field, "is required" if not value else "must not be blank")
        elif len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters (got {len(value)})")
        elif control_characters(value, allowed_controls):
            self.add(field, "must not contain control characters" +
                     (" other than newline and tab" if allowed_controls else ""))
        return value

    def __bool__(self) -> bool:
        return bool(self._found)

    def raise_if_any(self) -> None:
        if self._found:
            raise InvalidArgument(self._found)
