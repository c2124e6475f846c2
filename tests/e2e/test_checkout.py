"""Checkout through the edge, as a shop frontend and a payment provider call it:
REST/JSON via Envoy into cart, order (saga: catalog reservations, payment),
events over NATS to the notifications worker, whose email lands in the
mesh's SMTP sink as an .eml file."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from commerce.order.v1 import order_pb2, order_pb2_grpc

from services.devmesh.mesh import Mesh
from tests.e2e.harness import Account, Shop, checkout, new_customer, ok, place_order, stocked_product, wait_until


def stock(rest: httpx.Client, seller: Account, product_id: str) -> dict[str, int]:
    level = ok(rest.get(f"/v1/products/{product_id}/stock", headers=seller.auth))["stock"]
    return {key: int(level[key]) for key in ("onHand", "reserved", "available")}


def stock_settles(rest: httpx.Client, seller: Account, product_id: str, expected: dict[str, int]) -> None:
    """Until the stock is ``expected``: the catalog commits a confirmed order's reservation when it
    consumes OrderConfirmed, moments after the order is answered."""
    wait_until(f"stock {expected}", lambda: stock(rest, seller, product_id) == expected, 10, interval=0.05)


def email_about(mail_dir: Path, order_id: str, subject_word: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(mail_dir.glob("*.eml")) if mail_dir.exists() else []:
            text = path.read_text(errors="replace")
            if f"X-Commerce-Order: {order_id}" in text and subject_word in text:
                return text
        time.sleep(0.1)
    raise AssertionError(f"no {subject_word!r} email about {order_id} in {mail_dir} after {timeout}s")


@pytest.fixture(scope="module")
def shop(shop_a: Shop) -> Shop:
    return shop_a


def test_a_customer_checks_out_through_the_edge_and_gets_a_confirmation_email(
        mesh: Mesh, rest: httpx.Client, shop: Shop) -> None:
    buyer = new_customer(rest, shop)
    product_id = stocked_product(rest, shop.seller, on_hand=10, price_minor=1250)

    order = place_order(rest, buyer, product_id, 3, "tok_sandbox_ok")

    assert order["status"] == "ORDER_STATUS_CONFIRMED", order
    assert order["total"]["amountMinor"] == str(int(order["subtotal"]["amountMinor"])
                                                + int(order["shipping"].get("amountMinor", 0))
                                                + int(order["tax"].get("amountMinor", 0)))
    assert order["subtotal"]["amountMinor"] == "3750"
    stock_settles(rest, shop.seller, product_id, {"onHand": 7, "reserved": 0, "available": 7})
    payment = ok(rest.get(f"/v1/payments/{order['paymentId']}", headers=shop.seller.auth))["payment"]
    assert payment["status"] == "PAYMENT_STATUS_CAPTURED"
    assert payment["capturedAmount"]["amountMinor"] == order["total"]["amountMinor"]
    assert payment["orderId"] == order["orderId"]
    mail = email_about(mesh.mail_dir, order["orderId"], "confirmed")
    assert f"To: {buyer.email}" in mail


def test_a_declined_card_fails_the_order_and_leaves_the_stock_as_it_was(rest: httpx.Client, shop: Shop) -> None:
    buyer = new_customer(rest, shop)
    product_id = stocked_product(rest, shop.seller, on_hand=5)

    reply = checkout(rest, buyer, product_id, 2, "tok_sandbox_declined")

    assert reply.status_code == 400, reply.text
    status = reply.json()
    assert status["code"] == 9  # FAILED_PRECONDITION, naming the order that failed
    info = status["details"][0]
    assert info["reason"] == "PAYMENT_DECLINED"
    order = ok(rest.get(f"/v1/orders/{info['metadata']['order_id']}", headers=buyer.auth))["order"]
    assert order["status"] == "ORDER_STATUS_FAILED"
    assert order["failureReason"] == "PAYMENT_DECLINED"
    assert stock(rest, shop.seller, product_id) == {"onHand": 5, "reserved": 0, "available": 5}
    if order["paymentId"]:
        payment = ok(rest.get(f"/v1/payments/{order['paymentId']}", headers=shop.seller.auth))["payment"]
        assert payment["status"] == "PAYMENT_STATUS_DECLINED"
        assert int(payment["capturedAmount"].get("amountMinor", 0)) == 0


def test_watch_order_over_rest_streams_each_change_as_a_json_array(
        mesh: Mesh, rest: httpx.Client, shop: Shop) -> None:
    buyer = new_customer(rest, shop)
    product_id = stocked_product(rest, shop.seller, on_hand=4)
    order = place_order(rest, buyer, product_id, 1, "tok_sandbox_ok")
    assert order["status"] == "ORDER_STATUS_CONFIRMED"
    chunks: list[str] = []
    first = threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=mesh.edge_url, timeout=30) as client, client.stream(
                "GET", f"/v1/orders/{order['orderId']}:watch", headers=buyer.auth) as reply:
            assert reply.status_code == 200
            for chunk in reply.iter_text():
                chunks.append(chunk)
                first.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert first.wait(10), "the current state did not arrive before the stream ended"
    assert "ORDER_STATUS_CONFIRMED" in "".join(chunks)  # sent at once, while the stream stays open
    ok(rest.post(f"/v1/orders/{order['orderId']}:cancel", headers=buyer.auth, json={"reason": "changed my mind"}))
    watcher.join(15)
    assert not watcher.is_alive(), "the stream did not end with the cancelled order"

    statuses = [item["order"]["status"] for item in json.loads("".join(chunks))]
    assert statuses[0] == "ORDER_STATUS_CONFIRMED" and statuses[-1] == "ORDER_STATUS_CANCELLED"
    # restocked (the catalog commits the sale when it consumes OrderConfirmed, maybe after the restock)
    stock_settles(rest, shop.seller, product_id, {"onHand": 4, "reserved": 0, "available": 4})
    assert "cancel" in email_about(mesh.mail_dir, order["orderId"], "cancel").lower()


def test_watch_order_over_native_grpc_through_the_edge(mesh: Mesh, rest: httpx.Client, shop: Shop) -> None:
    buyer = new_customer(rest, shop)
    order = place_order(rest, buyer, stocked_product(rest, shop.seller, on_hand=3), 1, "tok_sandbox_ok")
    with grpc.insecure_channel(mesh.edge_address) as channel:
        stream = order_pb2_grpc.OrderServiceStub(channel).WatchOrder(
            order_pb2.WatchOrderRequest(order_id=order["orderId"]), metadata=buyer.metadata, timeout=20)
        first = next(stream)
        stream.cancel()
    assert first.order.order_id == order["orderId"]
    assert first.order.status == order_pb2.ORDER_STATUS_CONFIRMED


def _webhook(rest: httpx.Client, tenant_id: str, body: bytes, signature: str) -> httpx.Response:
    return rest.post(f"/v1/payments/webhooks/sandbox/{tenant_id}", content=body,
                     headers={"content-type": "application/json", "x-sandbox-signature": signature})


def test_a_signed_provider_webhook_passes_the_edge_raw_and_is_taken_once(
        mesh: Mesh, rest: httpx.Client, shop: Shop) -> None:
    secret = mesh.settings.payment_webhook_secret.get_secret_value().encode()
    assert secret, "the mesh runs with a generated webhook secret"
    event_id = f"evt_{uuid.uuid4().hex}"
    # Field names the edge's JSON body check would refuse: the raw body reaches the service untouched.
    body = json.dumps({"event_id": event_id, "type": "payment.disputed", "provider_reference": "sbx_pay_x",
                       "amount_minor": 100}).encode()
    signature = hmac.new(secret, body, hashlib.sha256).hexdigest()

    first = ok(_webhook(rest, shop.tenant_id, body, signature))
    again = ok(_webhook(rest, shop.tenant_id, body, signature))

    assert first == {"eventId": event_id, "duplicate": False}
    assert again == {"eventId": event_id, "duplicate": True}


def test_a_webhook_with_a_bad_signature_is_refused_at_the_service(rest: httpx.Client, shop: Shop) -> None:
    body = json.dumps({"event_id": f"evt_{uuid.uuid4().hex}", "type": "payment.captured",
                       "provider_reference": "sbx_pay_x", "amount_minor": 1}).encode()
    reply = _webhook(rest, shop.tenant_id, body, "00" * 32)
    assert reply.status_code == 401, reply.text
    assert reply.json()["code"] == 16  # UNAUTHENTICATED, as a google.rpc.Status
    missing = rest.post(f"/v1/payments/webhooks/sandbox/{shop.tenant_id}", content=body,
                        headers={"content-type": "application/json"})
    assert missing.status_code == 401
