"""The OpenAPI document: generated from the proto annotations, it covers every REST
binding of every public RPC and is what GET /openapi.json serves through the edge."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "gen/openapi/commerce.openapi.json"
VERBS = ("get", "put", "post", "delete", "patch")


def _bindings() -> set[tuple[str, str]]:
    files = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "gen/descriptor/commerce.pb").read_bytes())
    found = set()
    for file in files.file:
        for service in file.service:
            for method in service.method:
                if file.package.startswith("commerce.") and method.options.HasExtension(annotations_pb2.http):
                    top = method.options.Extensions[annotations_pb2.http]
                    for index, rule in enumerate([top, *top.additional_bindings]):
                        suffix = f"_{index + 1}" if index else ""
                        found.add((rule.WhichOneof("pattern") or "", f"{service.name}_{method.name}{suffix}"))
    return found


def test_every_rest_binding_is_an_operation_of_the_document() -> None:
    document = json.loads(DOCUMENT.read_text())
    operations = {(verb, op["operationId"]) for item in document["paths"].values()
                  for verb, op in item.items() if verb in VERBS}
    assert operations == _bindings()


def test_the_document_uses_the_proto3_json_mapping() -> None:
    document = json.loads(DOCUMENT.read_text())
    products = document["paths"]["/v1/products"]
    assert {p["name"] for p in products["get"]["parameters"]} >= {"pageSize", "minPriceMinor", "status"}
    schemas = document["components"]["schemas"]
    money = schemas["commerce.common.v1.Money"]["properties"]
    assert money["amountMinor"]["type"] == "string" and money["amountMinor"]["format"] == "int64"
    assert schemas["commerce.catalog.v1.ProductStatus"]["enum"][0] == "PRODUCT_STATUS_UNSPECIFIED"
    update = document["paths"]["/v1/products/{productId}"]["patch"]
    assert update["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("catalog.v1.Product")
    assert {p["name"] for p in update["parameters"]} == {"productId", "updateMask", "requestId"}
    responses = document["components"]["responses"]
    for status, answer in products["post"]["responses"].items():
        if status != "200":  # every error, 4xx declared one by one, is a google.rpc.Status
            schema = responses[answer["$ref"].rsplit("/", 1)[1]]["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("google.rpc.Status"), status
    assert {"400", "401", "403", "404", "409", "429", "default"} <= set(products["post"]["responses"])


def test_every_operation_has_a_summary_a_description_and_a_described_tag() -> None:
    document = json.loads(DOCUMENT.read_text())
    tags = {t["name"]: t.get("description", "") for t in document["tags"]}
    for path, operations in document["paths"].items():
        for verb, operation in operations.items():
            assert operation["summary"] and operation["description"], (verb, path)
            assert all(tags.get(tag) for tag in operation["tags"]), (verb, path)
    assert document["info"]["license"]["name"] and document["info"]["contact"]["name"]


def test_rest_users_get_the_document_from_the_edge(fuzz_rest: httpx.Client) -> None:
    reply = fuzz_rest.get("/openapi.json")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.json() == json.loads(DOCUMENT.read_text())
