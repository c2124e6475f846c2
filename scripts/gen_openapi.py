"""Generate the OpenAPI 3 document of the REST edge from the proto annotations.

    python scripts/gen_openapi.py [--descriptor gen/descriptor/commerce.pb] [--out gen/openapi/commerce.openapi.json]

Read from the descriptor set Envoy's gRPC-JSON transcoder uses, so the document
describes exactly what the transcoder accepts: every google.api.http binding of
every public RPC (additional bindings too) with its path parameters, the query
parameters a request without a body takes (every remaining scalar field, nested
ones dotted, in lowerCamelCase), the request body per the rule's ``body``
("*" = the request minus its path parameters, "field" = that field), the
response, and errors as google.rpc.Status. Proto3 JSON mapping: lowerCamelCase
names, 64-bit integers as strings, enums as their names, Timestamp and
FieldMask as strings. ``make gen`` (scripts/gen_protos.py) calls this; the
output is deterministic (sorted keys, no dates) so the tests catch a stale copy.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from google.api import annotations_pb2, field_behavior_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, MethodDescriptor

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR = ROOT / "gen/descriptor/commerce.pb"
INFO_DESCRIPTION = (
    "REST/JSON view of the commerce-mesh gRPC API, served by the edge (Envoy's gRPC-JSON transcoder) on the same "
    "port as native gRPC. Bodies and query parameters follow the ProtoJSON mapping: lowerCamelCase names, 64-bit "
    "integers as strings, enums by name, money in integer minor units. Every error is a google.rpc.Status with "
    "an ErrorInfo reason. GENERATED from proto/ (comments and google.api.http annotations) by "
    "scripts/gen_openapi.py (make gen): do not edit.")
# Who answers for the API, and its terms: set these for a deployment (no public home or licence is declared yet).
CONTACT = {"name": "commerce-mesh maintainers (see the README of this deployment)"}
LICENSE = {"name": "Proprietary: all rights reserved unless the deployment states otherwise"}
# Declared error responses: HTTP status -> (component name, what it means here).
ERRORS = {
    "400": ("BadRequest", "INVALID_ARGUMENT (a field, query parameter or body the method refuses; BadRequest names "
                          "the fields) or FAILED_PRECONDITION (the resource's state does not allow it)."),
    "401": ("Unauthenticated", "UNAUTHENTICATED: the token is missing, malformed, expired, revoked or not this "
                               "mesh's (reason TOKEN_EXPIRED, WRONG_AUDIENCE, ...)."),
    "403": ("PermissionDenied", "PERMISSION_DENIED: the caller's role may not make this call."),
    "404": ("NotFound", "NOT_FOUND: no such resource in the caller's tenant, or no such path."),
    "409": ("Conflict", "ALREADY_EXISTS (e.g. a duplicate sku) or ABORTED (a concurrent change won: retry)."),
    "429": ("TooManyRequests", "RESOURCE_EXHAUSTED (reason RATE_LIMITED): retry after the retry-after header."),
}
OUT = ROOT / "gen/openapi/commerce.openapi.json"
STATUS = "google.rpc.Status"
RAW_BODY = "google.api.HttpBody"
_VERBS = ("get", "put", "post", "delete", "patch")
_VARIABLE = re.compile(r"\{([^}=]+)(?:=([^}]*))?\}")
_INT64 = {FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64}
_UINT64 = {FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64}
_INT32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
_UINT32 = {FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32}
# Well-known types with a JSON form of their own.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time",
                                  "description": "RFC 3339 time in UTC, e.g. 2026-01-31T12:00:00Z."},
    "google.protobuf.FieldMask": {"type": "string", "description": "Comma-separated lowerCamelCase field paths."},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}},
                            "additionalProperties": True},
}


def _paragraphs(comment: str) -> str:
    """A proto comment as text: lines joined, blank lines kept as paragraph breaks."""
    return "\n\n".join(" ".join(p.split()) for p in re.split(r"\n\s*\n", comment.strip()) if p.strip())


def summary_of(description: str, name: str) -> str:
    """The first sentence of a method's comment (or its name in words), without the full stop."""
    first = re.split(r"(?<=[.!?])\s|\n", description.strip(), maxsplit=1)[0].rstrip(".") if description else ""
    return first or re.sub(r"(?<!^)(?=[A-Z])", " ", name).capitalize()


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _behaviors(field: FieldDescriptor) -> set[int]:
    options = field.GetOptions()
    return set(options.Extensions[field_behavior_pb2.field_behavior])


class Comments:
    """Leading comments of messages, fields and methods, from the descriptor set's source info."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self._by_name: dict[str, str] = {}
        for file in files.file:
            texts = {tuple(loc.path): _paragraphs(loc.leading_comments)
                     for loc in file.source_code_info.location if loc.leading_comments.strip()}
            paths: dict[str, tuple[int, ...]] = {}
            for i, service in enumerate(file.service):
                paths[f"{file.package}.{service.name}"] = (6, i)
                for j, method in enumerate(service.method):
                    paths[f"{file.package}.{service.name}.{method.name}"] = (6, i, 2, j)

            def walk(messages: Any, prefix: str, path: tuple[int, ...], paths: dict[str, tuple[int, ...]]) -> None:
                for i, message in enumerate(messages):
                    name, here = f"{prefix}.{message.name}", (*path, i)
                    paths[name] = here
                    for j, field in enumerate(message.field):
                        paths[f"{name}.{field.name}"] = (*here, 2, j)
                    walk(message.nested_type, name, (*here, 3), paths)

            walk(file.message_type, file.package, (4,), paths)
            for name, path in paths.items():
                if path in texts:
                    self._by_name[name] = texts[path]

    def of(self, full_name: str) -> str:
        return self._by_name.get(full_name, "")

    def of_service(self, full_name: str) -> str:
        return self.of(full_name)

    def of_method(self, method: MethodDescriptor) -> str:
        return self.of(method.full_name)

    def of_message(self, message: Descriptor) -> str:
        return self.of(message.full_name)

    def of_field(self, field: FieldDescriptor) -> str:
        return self.of(field.full_name)


class Builder:
    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.files = files
        self.pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            self.pool.Add(file)
        self.comments = Comments(files)
        self.schemas: dict[str, dict[str, Any]] = {}
        self._services: dict[str, str] = {}  # tag (service name) -> full name

    # -- schemas ----------------------------------------------------------------

    def _enum(self, enum: EnumDescriptor) -> dict[str, str]:
        if enum.full_name not in self.schemas:
            self.schemas[enum.full_name] = {"type": "string", "enum": [v.name for v in enum.values]}
        return _ref(enum.full_name)

    def message(self, message: Descriptor) -> dict[str, Any]:
        if message.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[message.full_name])
        if message.full_name not in self.schemas:
            self.schemas[message.full_name] = {}  # placeholder: recursive messages
            self.schemas[message.full_name] = self._object(message, skip=())
        return _ref(message.full_name)

    def _object(self, message: Descriptor, skip: tuple[str, ...]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in message.fields:
            if field.name in skip:
                continue
            properties[field.json_name] = self.field(field)
            if field_behavior_pb2.REQUIRED in _behaviors(field):
                required.append(field.json_name)
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        description = self.comments.of_message(message)
        if description:
            schema["description"] = description
        return schema

    def scalar(self, field: FieldDescriptor) -> dict[str, Any]:
        kind = field.type
        if field.message_type is not None:
            return self.message(field.message_type)
        if field.enum_type is not None:
            return self._enum(field.enum_type)
        if kind == FieldDescriptor.TYPE_STRING:
            return {"type": "string"}
        if kind == FieldDescriptor.TYPE_BYTES:
            return {"type": "string", "format": "byte"}
        if kind == FieldDescriptor.TYPE_BOOL:
            return {"type": "boolean"}
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return {"type": "number", "format": "double" if kind == FieldDescriptor.TYPE_DOUBLE else "float"}
        if kind in _INT64:
            return {"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,19}$"}
        if kind in _UINT64:
            return {"type": "string", "format": "uint64", "pattern": "^[0-9]{1,20}$"}
        if kind in _INT32:
            return {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
        if kind in _UINT32:
            return {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
        raise ValueError(f"unsupported field type {kind} of {field.full_name}")

    def field(self, field: FieldDescriptor) -> dict[str, Any]:
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            schema: dict[str, Any] = {"type": "object",
                                      "additionalProperties": self.scalar(message.fields_by_name["value"])}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.scalar(field)}
        else:
            schema = self.scalar(field)
        behaviors = _behaviors(field)
        extra: dict[str, Any] = {}
        if field_behavior_pb2.OUTPUT_ONLY in behaviors:
            extra["readOnly"] = True
        if field_behavior_pb2.INPUT_ONLY in behaviors:
            extra["writeOnly"] = True
        description = self.comments.of_field(field)
        if description:
            extra["description"] = description
        if not extra:
            return schema
        if "$ref" in schema:  # siblings of $ref are ignored by OpenAPI 3.0 tools
            return {"allOf": [schema], **extra}
        return {**schema, **extra}

    # -- operations -------------------------------------------------------------

    def _field_path(self, request: Descriptor, path: str) -> list[FieldDescriptor]:
        fields: list[FieldDescriptor] = []
        message: Descriptor | None = request
        for name in path.split("."):
            if message is None or name not in message.fields_by_name:
                raise ValueError(f"{request.full_name} has no field {path!r}")
            field = message.fields_by_name[name]
            fields.append(field)
            message = field.message_type
        return fields

    def _json_path(self, request: Descriptor, path: str) -> str:
        return ".".join(f.json_name for f in self._field_path(request, path))

    def _query(self, message: Descriptor, prefix: str, skip: set[str],
               within: tuple[str, ...]) -> list[dict[str, Any]]:
        """Query parameters: the fields bound neither by the path nor by the body, nested
        messages' scalars dotted ("price.currencyCode"); maps and repeated messages cannot be sent."""
        params: list[dict[str, Any]] = []
        for field in message.fields:
            proto_path = f"{prefix}{field.name}"
            if proto_path in skip:
                continue
            json_path = f"{self._json_path(self._root, proto_path)}"
            sub = field.message_type
            if sub is not None and sub.GetOptions().map_entry:
                continue
            if sub is not None and sub.full_name not in _WELL_KNOWN:
                if field.is_repeated or sub.full_name in within:
                    continue
                params += self._query(sub, proto_path + ".", skip, (*within, sub.full_name))
                continue
            if sub is not None and sub.full_name not in ("google.protobuf.Timestamp", "google.protobuf.FieldMask",
                                                         "google.protobuf.Duration"):
                continue
            schema = self.scalar(field)
            param: dict[str, Any] = {"name": json_path, "in": "query", "required": False,
                                     "schema": {"type": "array", "items": schema} if field.is_repeated else schema}
            if field.is_repeated:
                param["style"], param["explode"] = "form", True
            description = self.comments.of_field(field)
            if description:
                param["description"] = description
            params.append(param)
        return params

    def operation(self, method: MethodDescriptor, rule: http_pb2.HttpRule, verb: str, index: int,
                  anonymous: bool, roles: list[str]) -> tuple[str, dict[str, Any]]:
        request, response = method.input_type, method.output_type
        self._root = request
        template = getattr(rule, verb)
        bound = [m.group(1) for m in _VARIABLE.finditer(template)]
        # A nested field bound by the path (product.product_id) is named by its leaf
        # ("productId"): tools take a dotted name for an attribute access.
        names = {name: self._field_path(request, name)[-1].json_name for name in bound}
        if len(set(names.values())) < len(names):
            names = {name: self._json_path(request, name).replace(".", "_") for name in bound}
        path = _VARIABLE.sub(lambda m: "{" + names[m.group(1)] + "}", template)
        parameters = []
        for name in bound:
            parameter: dict[str, Any] = {"name": names[name], "in": "path", "required": True,
                                         "schema": self.scalar(self._field_path(request, name)[-1])}
            if "." in name:
                parameter["description"] = f"The request's {self._json_path(request, name)}."
            parameters.append(parameter)
        service = method.containing_service
        comment = self.comments.of_method(method)
        operation: dict[str, Any] = {
            "operationId": f"{service.name}_{method.name}" + (f"_{index + 1}" if index else ""),
            "summary": summary_of(comment, method.name),
            "tags": [service.name],
        }
        who = ", ".join(roles) + (", or without a token" if anonymous else "") if roles else "callers without a token"
        operation["description"] = (comment + "\n\n" if comment else "") + (
            f"Who may call it: {who}. gRPC: `{service.full_name}/{method.name}`.")
        if rule.body == "*":
            if request.full_name == RAW_BODY:
                operation["requestBody"] = _raw_body()
            else:
                name = f"{request.full_name}.Body" if bound else request.full_name
                if bound:
                    self.schemas[name] = self._object(request, skip=tuple(bound))
                else:
                    self.message(request)
                operation["requestBody"] = {"required": True,
                                            "content": {"application/json": {"schema": _ref(name)}}}
        elif rule.body:
            target = self._field_path(request, rule.body)[-1]
            if target.message_type is not None and target.message_type.full_name == RAW_BODY:
                operation["requestBody"] = _raw_body()
            else:
                operation["requestBody"] = {"required": True,
                                            "content": {"application/json": {"schema": self.scalar(target)}}}
            parameters += self._query(request, "", {*bound, rule.body}, (request.full_name,))
        else:
            parameters += self._query(request, "", set(bound), (request.full_name,))
        if parameters:
            operation["parameters"] = parameters
        reply = self.message(response)
        if method.server_streaming:
            operation["description"] += (
                "\n\nServer streaming: the body is a JSON array, one element per message, sent as they come.")
            reply = {"type": "array", "items": reply}
        errors = ["400", "401", *([] if anonymous and not roles else ["403"]), "404",
                  *(["409"] if verb != "get" else []), "429"]
        operation["responses"] = {
            "200": {"description": "OK", "content": {"application/json": {"schema": reply}}},
            **{status: {"$ref": f"#/components/responses/{ERRORS[status][0]}"} for status in errors},
            "default": {"$ref": "#/components/responses/Error"},
        }
        operation["security"] = [{"bearerAuth": []}, {}] if anonymous else [{"bearerAuth": []}]
        return path, operation

    def document(self) -> dict[str, Any]:
        from commerce.access.v1 import access_pb2  # generated; imported late so --help works without gen/

        paths: dict[str, dict[str, Any]] = {}
        self._status()
        for file in self.files.file:
            if not file.package.startswith("commerce."):
                continue
            for service_proto in file.service:
                service = self.pool.FindServiceByName(f"{file.package}.{service_proto.name}")
                self._services[service.name] = service.full_name
                for method in service.methods:
                    options = method.GetOptions()
                    if not options.HasExtension(annotations_pb2.http):
                        continue
                    top = options.Extensions[annotations_pb2.http]
                    access: Any = options.Extensions[access_pb2.access]  # type: ignore[index]
                    roles = [access_pb2.Role.Name(r).removeprefix("ROLE_").lower() for r in access.roles]
                    for index, rule in enumerate([top, *top.additional_bindings]):
                        verb = rule.WhichOneof("pattern")
                        if verb not in _VERBS:
                            continue
                        path, operation = self.operation(method, rule, str(verb), index, access.anonymous, roles)
                        if verb in paths.setdefault(path, {}):
                            raise ValueError(f"two bindings for {verb.upper()} {path}")
                        paths[path][str(verb)] = operation
        used = {op["tags"][0] for p in paths.values() for op in p.values()}
        tags = [{"name": name, "description": self.comments.of_service(full)}
                for name, full in sorted(self._services.items()) if name in used]
        return {
            "openapi": "3.0.3",
            "info": {
                "title": "commerce-mesh REST API",
                "version": "v1",
                "description": INFO_DESCRIPTION,
                "contact": CONTACT,
                "license": LICENSE,
            },
            "servers": [{"url": "/", "description": "the edge (Envoy) that serves this document"}],
            "tags": tags,
            "paths": paths,
            "components": {
                "securitySchemes": {"bearerAuth": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "An access token from POST /v1/auth/login or /v1/auth/guest: "
                                   "`authorization: Bearer <token>` (the scheme in any case)."}},
                "responses": self._error_responses(),
                "schemas": self.schemas,
            },
        }

    def _error_responses(self) -> dict[str, Any]:
        content = {"application/json": {"schema": _ref(STATUS)}}
        responses = {name: {"description": text, "content": content} for name, text in ERRORS.values()}
        responses["Error"] = {"description": "Any other error (5xx: UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL), "
                                             "as a google.rpc.Status.", "content": content}
        return responses

    def _status(self) -> None:
        self.schemas[STATUS] = {
            "type": "object",
            "description": ("The error model of gRPC and of this API (AIP-193): code (google.rpc.Code), message, "
                            "details. The first detail is a google.rpc.ErrorInfo whose reason says what went wrong "
                            "(README, Errors); a google.rpc.BadRequest follows when fields are at fault."),
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "integer", "format": "int32", "description": "google.rpc.Code, e.g. 3 for "
                                                                              "INVALID_ARGUMENT."},
                "message": {"type": "string", "description": "What went wrong, for a developer to read."},
                "details": {"type": "array", "items": {"oneOf": [_ref("google.rpc.ErrorInfo"),
                                                                  _ref("google.rpc.BadRequest")]}},
            },
        }
        self.schemas["google.rpc.ErrorInfo"] = {
            "type": "object", "description": "Why the call failed, for programs to act on.",
            "required": ["@type", "reason", "domain"],
            "properties": {
                "@type": {"type": "string", "enum": ["type.googleapis.com/google.rpc.ErrorInfo"]},
                "reason": {"type": "string", "description": "UPPER_SNAKE_CASE, e.g. OUT_OF_STOCK, TOKEN_EXPIRED.",
                           "example": "PRODUCT_NOT_FOUND"},
                "domain": {"type": "string", "enum": ["commerce-mesh"]},
                "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        }
        self.schemas["google.rpc.BadRequest"] = {
            "type": "object", "description": "The request fields at fault, as the request spelled them.",
            "required": ["@type", "fieldViolations"],
            "properties": {
                "@type": {"type": "string", "enum": ["type.googleapis.com/google.rpc.BadRequest"]},
                "fieldViolations": {"type": "array", "items": {
                    "type": "object", "properties": {
                        "field": {"type": "string", "description": "Path of the field in lowerCamelCase, e.g. "
                                                                   "product.price.amountMinor or lines[0].quantity."},
                        "description": {"type": "string"}}}},
            },
        }


def _raw_body() -> dict[str, Any]:
    return {"required": True, "description": "Passed on byte for byte (google.api.HttpBody).",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}


def build(descriptor: Path) -> dict[str, Any]:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    return Builder(files).document()


def render(descriptor: Path) -> str:
    return json.dumps(build(descriptor), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write(descriptor: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(descriptor))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--descriptor", type=Path, default=DESCRIPTOR)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    write(args.descriptor, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
