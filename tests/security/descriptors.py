"""Every RPC of the commerce protos, read from gen/descriptor/commerce.pb (never a
hand-written list), with its declared access rule."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commerce.access.v1 import access_pb2
from google.protobuf import descriptor_pb2

from services.runtime.access import role_name

ROOT = Path(__file__).resolve().parents[2]
DESCRIPTOR_SET = ROOT / "gen" / "descriptor" / "commerce.pb"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    anonymous: bool

    def allows(self, role: str | None) -> bool:
        """What the interceptor must do: a token-less call passes only an anonymous rule;
        an anonymous rule admits any token too."""
        return self.anonymous or (role is not None and role in self.roles)


@dataclass(frozen=True)
class Rpc:
    service: str  # full name, e.g. commerce.catalog.v1.CatalogService
    method: str
    input: descriptor_pb2.DescriptorProto
    streaming: bool
    rule: Rule | None  # None: no (commerce.access.v1.access) declaration

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"

    @property
    def id(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.method}"


def load() -> list[Rpc]:
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    messages = {f".{f.package}.{m.name}": m for f in files.file for m in f.message_type}
    rpcs: list[Rpc] = []
    for file in files.file:
        if not file.package.startswith("commerce."):
            continue
        for service in file.service:
            for method in service.method:
                rule = None
                extension: Any = access_pb2.access
                if method.options.HasExtension(extension):
                    declared: access_pb2.AccessRule = method.options.Extensions[extension]
                    rule = Rule(frozenset(role_name(r) for r in declared.roles), declared.anonymous)
                rpcs.append(Rpc(f"{file.package}.{service.name}", method.name, messages[method.input_type],
                                method.server_streaming, rule))
    return rpcs


RPCS = load()
