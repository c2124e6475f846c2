"""Server reflection for the whole mesh, from the descriptor set the edge uses."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].full_name


def _proto(file: FileDescriptor) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto()
    file.CopyToProto(proto)
    return proto


def mesh_pool(files: descriptor_pb2.FileDescriptorSet) -> descriptor_pool.DescriptorPool:
    """A pool with every file of the set (in dependency order) plus health and reflection."""
    pool = descriptor_pool.DescriptorPool()
    seen: set[str] = set()
    extra = [_proto(health_pb2.DESCRIPTOR), _proto(reflection_pb2.DESCRIPTOR)]
    for file in [*files.file, *extra]:
        if file.name not in seen:
            seen.add(file.name)
            pool.Add(file)
    return pool


def reflected_names(commerce_services: Iterable[str]) -> list[str]:
    return sorted([*commerce_services, HEALTH, REFLECTION])
