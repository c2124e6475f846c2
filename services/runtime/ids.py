"""Resource ids shared by every service: a prefix plus a ULID (48-bit milliseconds,
then 80 random bits, Crockford base32), so ids sort by creation time byte-wise and
keyset pagination can order by id. A malformed id in a request is simply not found."""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field

from services.runtime.errors import InvalidArgument, NotFound

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def ulid(now_ms: int | None = None, random_bits: int | None = None) -> str:
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = secrets.randbits(80) if random_bits is None else random_bits
    value = (ms & (2**48 - 1)) << 80 | (rand & (2**80 - 1))
    return "".join(_ALPHABET[(value >> shift) & 31] for shift in range(125, -1, -5))


@dataclass(frozen=True)
class ResourceIds:
    """Ids of one resource kind, e.g. ResourceIds("prd_", "product")."""

    prefix: str
    resource: str
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", re.compile(rf"^{re.escape(self.prefix)}[0-7][0-9A-HJKMNP-TV-Z]{{25}}$"))

    def new(self, now_ms: int | None = None, random_bits: int | None = None) -> str:
        return self.prefix + ulid(now_ms, random_bits)

    def run(self, count: int) -> list[str]:
        """``count`` new ids in ascending order (one millisecond, consecutive random parts):
        things made together, e.g. by one import, sort as they were sent."""
        ms = time.time_ns() // 1_000_000
        start = secrets.randbelow(2**80 - count) if count else 0
        return [self.new(ms, start + i) for i in range(count)]

    def is_valid(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None

    def not_found(self, value: str) -> NotFound:
        return NotFound(f"{self.resource} not found", reason=f"{self.resource.upper()}_NOT_FOUND",
                        metadata={f"{self.resource}_id": value[:64]})

    def requested(self, value: str, field: str | None = None) -> str:
        """An id as a request names it: required, and a malformed one is simply not found."""
        if not value:
            raise InvalidArgument.field(field or f"{self.resource}_id", "is required")
        if not self.is_valid(value):
            raise self.not_found(value)
        return value
