"""Unknown fields in REST request bodies, found before Envoy's transcoder
silently drops them (it has no option to refuse them).

Each REST binding with a body (google.api.http: verb, path template, body
field) is indexed from the descriptor set; a JSON body is walked against the
message it maps to, and every key that names no field is reported with its
path ("product.colour")."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor

_VERBS = ("get", "put", "post", "delete", "patch")
_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")


@dataclass(frozen=True)
class Violation:
    field: str
    description: str


@dataclass(frozen=True)
class Binding:
    verb: str  # "POST"
    pattern: re.Pattern[str]
    literal_length: int  # more literal text = more specific
    body: Descriptor  # the message the JSON body is read into
    prefix: str  # path of that message in the request ("" for body "*")


def _template_regex(template: str) -> re.Pattern[str]:
    out, last = [], 0
    for match in _VARIABLE.finditer(template):
        out.append(re.escape(template[last:match.start()]))
        inner = match.group(2) or "*"
        out.append("".join(".+" if part == "**" else "[^/]+" if part == "*" else re.escape(part)
                           for part in re.split(r"(\*\*|\*)", inner) if part))
        last = match.end()
    out.append(re.escape(template[last:]))
    return re.compile("^" + "".join(out) + "$")


def _rules(rule: http_pb2.HttpRule) -> Iterator[http_pb2.HttpRule]:
    yield rule
    yield from rule.additional_bindings


# A body bound to google.api.HttpBody is passed on raw (e.g. a signed webhook): not JSON fields.
_RAW_BODY = "google.api.HttpBody"


def _body_target(request: Descriptor, body: str) -> tuple[Descriptor, str] | None:
    if body == "*":
        return None if request.full_name == _RAW_BODY else (request, "")
    message, path = request, []
    for name in body.split("."):
        field = message.fields_by_name.get(name)
        if field is None or field.message_type is None:
            return None  # a scalar body: nothing to check for unknown keys
        message = field.message_type
        path.append(field.json_name)
    return None if message.full_name == _RAW_BODY else (message, ".".join(path) + ".")


class BodyChecker:
    def __init__(self, files: descriptor_pb2.FileDescriptorSet, pool: descriptor_pool.DescriptorPool,
                 services: list[str]) -> None:
        self._bindings: list[Binding] = []
        wanted = set(services)
        for file in files.file:
            for service in file.service:
                if f"{file.package}.{service.name}" not in wanted:
                    continue
                for method in service.method:
                    if method.options.HasExtension(annotations_pb2.http):
                        request = pool.FindMessageTypeByName(method.input_type.lstrip("."))
                        self._index(method.options.Extensions[annotations_pb2.http], request)
        self._bindings.sort(key=lambda b: -b.literal_length)

    def _index(self, http: http_pb2.HttpRule, request: Descriptor) -> None:
        for rule in _rules(http):
            verb = rule.WhichOneof("pattern")
            if verb not in _VERBS or not rule.body:
                continue
            template = getattr(rule, verb)
            target = _body_target(request, rule.body)
            if target is not None:
                self._bindings.append(Binding(verb.upper(), _template_regex(template),
                                              len(_VARIABLE.sub("", template)), *target))

    def binding(self, method: str, path: str) -> Binding | None:
        path = path.split("?", 1)[0]
        return next((b for b in self._bindings if b.verb == method and b.pattern.match(path)), None)

    def check(self, method: str, path: str, body: bytes) -> list[Violation]:
        """Unknown fields of the body. A body that is not JSON is left to the transcoder."""
        binding = self.binding(method.upper(), path)
        if binding is None or not body.strip():
            return []
        try:
            value = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return []
        return unknown_fields(binding.body, value, binding.prefix)


def _message_of(field: FieldDescriptor) -> Descriptor | None:
    message = field.message_type
    if message is None or message.full_name.startswith("google.protobuf."):
        return None  # scalars, and well-known types with their own JSON forms
    return message


def unknown_fields(message: Descriptor, value: object, prefix: str = "") -> list[Violation]:
    if not isinstance(value, dict):
        return []  # wrong shapes are the transcoder's to refuse
    found: list[Violation] = []
    by_json = {f.json_name: f for f in message.fields}
    for key, item in value.items():
        field = by_json.get(key) or message.fields_by_name.get(key)
        if field is None:
            found.append(Violation(f"{prefix}{key}", f"unknown field: {message.full_name} has no field {key!r}"))
            continue
        child = _message_of(field)
        if child is None:
            continue
        if child.GetOptions().map_entry:
            inner = _message_of(child.fields_by_name["value"])
            if inner is not None and isinstance(item, dict):
                for map_key, map_value in item.items():
                    found += unknown_fields(inner, map_value, f"{prefix}{key}[{map_key}].")
        elif field.is_repeated:
            for index, element in enumerate(item if isinstance(item, list) else []):
                found += unknown_fields(child, element, f"{prefix}{key}[{index}].")
        else:
            found += unknown_fields(child, item, f"{prefix}{key}.")
    return found
