"""A client in another language, built from proto/ alone: tests/clients/node/checkout.js
(@grpc/grpc-js + @grpc/proto-loader, installed by `make setup` from package.json) logs in,
lists products, checks out and reads the ErrorInfo reason of refused calls, through the
session mesh's edge over native gRPC."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from services.devmesh.mesh import Mesh
from tests.e2e.harness import Account, open_shop, order_when, stocked_product

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "clients" / "node" / "checkout.js"


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is not installed: the Node client test needs Node.js (and `make setup`)")
        pytest.skip("node is not installed")
    missing = [p for p in ("@grpc/grpc-js", "@grpc/proto-loader", "protobufjs")
               if not (ROOT / "node_modules" / p / "package.json").is_file()]
    assert not missing, f"node_modules lacks {missing}: run `make setup` (npm install)"
    return node


def test_a_node_client_from_proto_alone_logs_in_checks_out_and_reads_error_reasons(
        mesh: Mesh, rest: httpx.Client, admin: Account) -> None:
    node = _node()
    shop = open_shop(rest, admin, "node-client")
    product_id = stocked_product(rest, shop.seller, on_hand=3, price_minor=1234)
    customer = shop.customer
    done = subprocess.run([node, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "EDGE": mesh.edge_address, "TENANT": shop.tenant_id,
                               "EMAIL": customer.email, "PASSWORD": customer.password})
    assert done.returncode == 0, done.stdout + done.stderr
    seen = json.loads(done.stdout)
    assert seen["token_type"] == "Bearer" and seen["listed"] == 1 and seen["product_id"] == product_id
    assert seen["price"] == {"currency_code": "USD", "amount_minor": "1234"}  # int64 as a string, as ProtoJSON
    order = order_when(rest, customer.auth, seen["order_id"])
    assert order["status"] == "ORDER_STATUS_CONFIRMED", order
    assert [line["productId"] for line in order["lines"]] == [product_id]
    # A service's refusal and the edge's, read the same way from grpc-status-details-bin.
    assert seen["not_found"] == {"code": 5, "codeName": "NOT_FOUND", "message": "product not found",
                                 "reason": "PRODUCT_NOT_FOUND", "fields": []}
    assert (seen["bad_token"]["codeName"], seen["bad_token"]["reason"]) == ("UNAUTHENTICATED", "MALFORMED_TOKEN")
