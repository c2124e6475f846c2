"""Who may call what: read from the ``(commerce.access.v1.access)`` option that
every RPC declares in proto/. A method without a declaration is refused to all."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from commerce.access.v1 import access_pb2
from google.protobuf.descriptor import ServiceDescriptor


@dataclass(frozen=True)
class AccessRule:
    roles: frozenset[str]
    anonymous: bool

    def allows(self, roles: frozenset[str]) -> bool:
        return not self.roles.isdisjoint(roles)


DENY_ALL = AccessRule(roles=frozenset(), anonymous=False)


def role_name(value: int) -> str:
    """ROLE_SELLER -> "seller" (the spelling used in the token's roles claim)."""
    return str(access_pb2.Role.Name(value)).removeprefix("ROLE_").lower()


def rules_for(services: Iterable[ServiceDescriptor]) -> dict[str, AccessRule]:
    rules: dict[str, AccessRule] = {}
    for service in services:
        for method in service.methods:
            path = f"/{service.full_name}/{method.name}"
            options = method.GetOptions()
            extension: Any = access_pb2.access
            if not options.HasExtension(extension):
                rules[path] = DENY_ALL
                continue
            rule: access_pb2.AccessRule = options.Extensions[extension]
            rules[path] = AccessRule(roles=frozenset(role_name(r) for r in rule.roles), anonymous=rule.anonymous)
    return rules
