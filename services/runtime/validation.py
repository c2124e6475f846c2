"""Field checks shared by every service. ``Violations`` collects what is wrong with a
request, field by field, so one INVALID_ARGUMENT names every bad field (as a gRPC
caller spells it: "product.title", "lines[2].quantity"; REST callers get the same
paths in lowerCamelCase, see services/runtime/interceptors.py). The wording of the
common checks lives here once, so every service says the same thing the same way."""

from __future__ import annotations

import functools
import re

from services.runtime.errors import FieldViolation, InvalidArgument

# Control characters (C0, DEL, C1: Unicode's category Cc exactly) and lone surrogates (Cs)
# never belong in text a person typed. One regular expression instead of a category look-up
# per character: bulk imports check every field of every product.
_FORBIDDEN = [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))]
_SURROGATES = "\ud800-\udfff"
# Idempotency keys (AIP-155) of every mutating call, whatever the service.
REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
REQUEST_ID_RULE = "must be 1-128 of A-Z a-z 0-9 _ . : - (a UUID is a good choice)"


@functools.cache
def _forbidden(allowed: str) -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(c) for c in _FORBIDDEN if c not in allowed) + _SURROGATES + "]")


def control_characters(value: str, allowed: str = "") -> bool:
    """True when ``value`` holds a control character (other than those in ``allowed``) or a lone surrogate."""
    return _forbidden(allowed).search(value) is not None


class Violations:
    """Collects field violations; ``raise_if_any`` ends validation."""

    def __init__(self) -> None:
        self.found: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.found.append(FieldViolation(field, description))

    def __bool__(self) -> bool:
        return bool(self.found)

    def raise_if_any(self) -> None:
        if self.found:
            raise InvalidArgument(self.found)

    def required(self, field: str, value: object, what: str = "") -> bool:
        """False (and a violation) when ``value`` is empty."""
        if value:
            return True
        self.add(field, "is required" + (f": {what}" if what else ""))
        return False

    def text(self, field: str, value: str, *, max_len: int, required: bool = True, allowed_controls: str = "",
             trimmed: bool = False) -> str:
        """Text a person wrote: not empty nor blank when required, at most ``max_len`` characters,
        no control characters (but ``allowed_controls``), and no surrounding white space when
        ``trimmed``."""
        if required and not value.strip():
            self.add(field, "is required" if not value else "must not be blank")
        elif len(value) > max_len:
            self.add(field, f"must be at most {max_len} characters (got {len(value)})")
        elif control_characters(value, allowed_controls):
            self.add(field, "must not contain control characters" +
                     (" other than newline and tab" if allowed_controls else ""))
        elif trimmed and value != value.strip():
            self.add(field, "must not start or end with white space")
        return value

    def request_id(self, value: str, *, required: bool, field: str = "request_id") -> str:
        """An idempotency key: a retry with the same one returns the first answer."""
        if not value:
            if required:
                self.add(field, "is required (a UUID is a good choice)")
        elif not REQUEST_ID.fullmatch(value):
            self.add(field, REQUEST_ID_RULE)
        return value


def checked_request_id(value: str, *, required: bool, field: str = "request_id") -> str:
    v = Violations()
    v.request_id(value, required=required, field=field)
    v.raise_if_any()
    return value
