"""REST request bodies checked strictly before any service runs: Envoy's transcoder
parses JSON leniently (trailing commas, single quotes, unquoted keys, comments, the last
of two duplicate keys) and silently drops unknown fields, so a body it accepts is not
necessarily one ProtoJSON accepts.

Each REST binding with a body (google.api.http: verb, path template, body field) is
indexed from the descriptor set; a body must then be, in this order:
- JSON as RFC 8259 defines it, in UTF-8 (Python's json: no trailing commas, comments,
  single quotes, unquoted keys; NaN and Infinity refused too), with no key twice in one
  object and no lone surrogate, at most MAX_JSON_DEPTH levels deep;
- an object whose every key names a field of the message it maps to (by its JSON or its
  proto name, not both), reported with its path ("product.colour");
- a value ProtoJSON can read into that message (protobuf's json_format, the reference
  parser: types, enum names, 64-bit integers, timestamps, field masks).
A refusal carries its reason from services/edge/refusals.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from services.edge.refusals import MAX_JSON_DEPTH

_VERBS = ("get", "put", "post", "delete", "patch")
_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True)
class Violation:
    field: str
    description: str
    twice: bool = False  # a field named by both its JSON and its proto name


@dataclass(frozen=True)
class BodyRefusal:
    reason: str  # one of services/edge/refusals.py's body-check rows
    message: str
    violations: tuple[Violation, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


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
        found = message.fields_by_name.get(name)
        if found is None or found.message_type is None:
            return None  # a scalar body: nothing to check for unknown keys
        message = found.message_type
        path.append(found.json_name)
    return None if message.full_name == _RAW_BODY else (message, ".".join(path) + ".")


class _Malformed(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Malformed("DUPLICATE_FIELD", f"the key {key!r} is given twice in one object of the request body")
        found[key] = value
    return found


def _no_constant(name: str) -> Any:
    raise _Malformed("MALFORMED_JSON", f"the request body is not valid JSON (RFC 8259): {name} is not a JSON value")


def _depth_and_text(value: Any) -> None:
    """MAX_JSON_DEPTH, and no lone surrogate (an escape like \\ud800 that is no character)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _Malformed("JSON_TOO_DEEP", f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
            children = list(item.items()) if isinstance(item, dict) else [(None, v) for v in item]
            for key, child in children:
                if key is not None and _SURROGATE.search(key):
                    raise _Malformed("MALFORMED_JSON", "the request body holds a key that is not valid Unicode")
                stack.append((child, depth + 1))
        elif isinstance(item, str) and _SURROGATE.search(item):
            raise _Malformed("MALFORMED_JSON", "the request body holds a string that is not valid Unicode "
                                               "(a lone surrogate escape)")


def parse_strict(body: bytes) -> Any:
    """The JSON value of a body, or _Malformed (MALFORMED_JSON, DUPLICATE_FIELD, JSON_TOO_DEEP)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Malformed("MALFORMED_JSON", f"the request body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise _Malformed("JSON_TOO_DEEP", f"the request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise _Malformed("MALFORMED_JSON", f"the request body is not valid JSON (RFC 8259): {exc.msg} "
                                           f"at line {exc.lineno} column {exc.colno}") from None
    _depth_and_text(value)
    return value


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

    def check(self, method: str, path: str, body: bytes) -> BodyRefusal | None:
        """None when the body may go on; a body no binding takes is left to the transcoder (404)."""
        binding = self.binding(method.upper(), path)
        if binding is None or not body.strip():
            return None
        try:
            value = parse_strict(body)
        except _Malformed as malformed:
            return BodyRefusal(malformed.reason, str(malformed))
        if not isinstance(value, dict):
            return BodyRefusal("INVALID_FIELD_VALUE",
                               f"the request body must be a JSON object ({binding.body.full_name})")
        found = unknown_fields(binding.body, value, binding.prefix)
        if found:
            twice = [v for v in found if v.twice]
            if twice:
                return BodyRefusal("DUPLICATE_FIELD", f"a field is given twice in the request body: "
                                   f"{', '.join(v.field for v in twice)}", tuple(twice))
            fields = ", ".join(v.field for v in found)
            return BodyRefusal("UNKNOWN_FIELD", f"unknown field in the request body: {fields}", tuple(found),
                               {"fields": fields})
        try:
            json_format.ParseDict(value, message_factory.GetMessageClass(binding.body)())
        except json_format.ParseError as exc:
            return BodyRefusal("INVALID_FIELD_VALUE", f"the request body does not fit {binding.body.full_name}: {exc}")
        return None


def _message_of(field: FieldDescriptor) -> Descriptor | None:
    message = field.message_type
    if message is None or message.full_name.startswith("google.protobuf."):
        return None  # scalars, and well-known types with their own JSON forms
    return message


def unknown_fields(message: Descriptor, value: object, prefix: str = "") -> list[Violation]:
    """Keys that name no field of ``message`` (and fields named twice, by both their names), with their paths."""
    if not isinstance(value, dict):
        return []  # wrong shapes are json_format's to refuse
    found: list[Violation] = []
    by_json = {f.json_name: f for f in message.fields}
    seen: set[str] = set()
    for key, item in value.items():
        field_ = by_json.get(key) or message.fields_by_name.get(key)
        if field_ is None:
            found.append(Violation(f"{prefix}{key}", f"unknown field: {message.full_name} has no field {key!r}"))
            continue
        if field_.name in seen:
            found.append(Violation(f"{prefix}{field_.json_name}",
                                   f"given twice: as {field_.json_name!r} and as {field_.name!r}", twice=True))
            continue
        seen.add(field_.name)
        child = _message_of(field_)
        if child is None:
            continue
        if child.GetOptions().map_entry:
            inner = _message_of(child.fields_by_name["value"])
            if inner is not None and isinstance(item, dict):
                for map_key, map_value in item.items():
                    found += unknown_fields(inner, map_value, f"{prefix}{key}[{map_key}].")
        elif field_.is_repeated:
            for index, element in enumerate(item if isinstance(item, list) else []):
                found += unknown_fields(child, element, f"{prefix}{key}[{index}].")
        else:
            found += unknown_fields(child, item, f"{prefix}{key}.")
    return found
