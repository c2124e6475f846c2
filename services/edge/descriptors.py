"""What the edge exposes, read from the descriptor set the transcoder uses:
for each enabled service (tenant, catalog, ...), its public gRPC services
(those whose methods carry a google.api.http rule) and their server streams."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2
from google.protobuf import descriptor_pb2


@dataclass(frozen=True)
class EdgeService:
    owner: str  # the process serving it: "tenant", "catalog", ...
    grpc_names: tuple[str, ...]  # full names of its public gRPC services
    streaming_paths: tuple[str, ...]  # "/pkg.Service/Method" of its server-streaming methods

    @property
    def health_name(self) -> str:
        return self.grpc_names[0]


def load_descriptor_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes())


def _is_public(service: descriptor_pb2.ServiceDescriptorProto) -> bool:
    return any(m.options.HasExtension(annotations_pb2.http) for m in service.method)


def edge_service(files: descriptor_pb2.FileDescriptorSet, owner: str) -> EdgeService:
    package = f"commerce.{owner}.v1"
    names: list[str] = []
    streams: list[str] = []
    for file in files.file:
        if file.package != package:
            continue
        for service in file.service:
            if not _is_public(service):
                continue
            full = f"{package}.{service.name}"
            names.append(full)
            streams += [f"/{full}/{m.name}" for m in service.method if m.server_streaming]
    if not names:
        raise ValueError(f"no public gRPC service of {owner!r} (package {package}) in the descriptor set")
    return EdgeService(owner, tuple(sorted(names)), tuple(sorted(streams)))


def edge_services(files: descriptor_pb2.FileDescriptorSet, owners: tuple[str, ...]) -> list[EdgeService]:
    return [edge_service(files, owner) for owner in owners]
