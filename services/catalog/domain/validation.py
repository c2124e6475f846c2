"""Field checks that collect violations, so one INVALID_ARGUMENT names every bad
field (as a REST caller spells it: "product.title", "page_token", ...)."""

from __future__ import annotations

import functools
import re

from services.runtime.errors import FieldViolation, InvalidArgument

# Unicode category Cc is exactly these: C0, DEL and C1.
_CONTROLS = [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))]


@functools.cache
def _controls(allowed: str) -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(c) for c in _CONTROLS if c not in allowed) + "]")


def control_characters(value: str, allowed: str = "") -> bool:
    """True when ``value`` holds a control character (other than those in ``allowed``)."""
    return _controls(allowed).search(value) is not None


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
