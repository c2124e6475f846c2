"""One REST PlaceOrder is one trace, from Envoy to the email: the real mesh (Envoy included)
exports its spans to an OTLP/HTTP receiver in the test."""

from __future__ import annotations

import json
import time

from services.devmesh.traces import OtlpReceiver, Span, span_tree
from tests.e2e.harness import checkout, new_customer, ok, order_when, stocked_product
from tests.observability.conftest import Traced

PAYMENT_TOKEN = "tok_sandbox_ok"


def _trace_of(receiver: OtlpReceiver, order_id: str, complete: set[str], timeout: float = 30) -> list[Span]:
    """The spans of the trace in which the saga handled ``order_id``, once every span or service
    name of ``complete`` is among them and every span's parent too, but the root's (or as they are
    when ``timeout`` runs out: Envoy sends its spans every 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = receiver.spans()
        traces = {s.trace_id for s in spans if s.attributes.get("commerce.order_id") == order_id}
        found = [s for s in spans if s.trace_id in traces]
        names = {s.name for s in found} | {s.service for s in found}
        ids = {s.span_id for s in found}
        whole = sum(s.parent_id not in ids for s in found) == 1  # every parent is in, but the root's
        if (len(traces) == 1 and complete <= names and whole) or time.monotonic() > deadline:
            assert len(traces) == 1, f"the order's spans are in {len(traces)} traces, not one"
            return found
        time.sleep(0.2)


def _ancestors(span: Span, by_id: dict[str, Span]) -> list[Span]:
    chain = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        chain.append(span)
    return chain


def _one(trace: list[Span], service: str, name: str) -> Span:
    found = [s for s in trace if s.service == service and s.name == name]
    assert len(found) == 1, f"{service}: {name}: {len(found)} spans\n{span_tree(trace)}"
    return found[0]


def test_a_rest_checkout_is_one_trace_from_the_edge_to_the_email(traced: Traced, receiver: OtlpReceiver) -> None:
    traced_mesh, traced_rest, traced_shop = traced.mesh, traced.rest, traced.shop
    buyer = new_customer(traced_rest, traced_shop)
    product_id = stocked_product(traced_rest, traced_shop.seller, on_hand=5)
    placed = ok(checkout(traced_rest, buyer, product_id, 1, PAYMENT_TOKEN))["order"]
    order_id = str(placed["orderId"])
    assert order_when(traced_rest, buyer.auth, order_id)["status"] == "ORDER_STATUS_CONFIRMED"

    place = "/commerce.order.v1.OrderService/PlaceOrder"
    confirmed = "commerce.order.v1.OrderConfirmed"
    trace = _trace_of(receiver, order_id, {place, "/commerce.cart.v1.CartService/GetCart",
                                           "/commerce.catalog.v1.InventoryService/ReserveStock",
                                           "/commerce.payment.v1.PaymentProcessingService/ChargePayment",
                                           f"publish {confirmed}", f"process {confirmed}", "smtp send", "edge"})
    tree = span_tree(trace)
    by_id = {s.span_id: s for s in trace}

    # Envoy's span is the root: every other span descends from it.
    roots = [s for s in trace if s.parent_id not in by_id]
    assert [(s.service, s.kind) for s in roots] == [("edge", "server")], tree
    edge = roots[0]
    assert {s.service for s in trace} >= {"edge", "order", "cart", "catalog", "payment", "notifications"}, tree
    assert all(edge in _ancestors(s, by_id) for s in trace if s is not edge), tree

    # The order service's handling of PlaceOrder, under Envoy; each peer's server span under
    # an order client span under it.
    order = _one(trace, "order", place)
    assert order.kind == "server" and edge in _ancestors(order, by_id), tree
    for service, method in (("cart", "/commerce.cart.v1.CartService/GetCart"),
                            ("catalog", "/commerce.catalog.v1.InventoryService/ReserveStock"),
                            ("payment", "/commerce.payment.v1.PaymentProcessingService/ChargePayment")):
        served = _one(trace, service, method)
        caller = by_id[served.parent_id]
        assert (caller.service, caller.kind, caller.name) == ("order", "client", method), tree
        assert order in _ancestors(served, by_id), tree
        assert any(s.service == service and s.attributes.get("db.system") == "postgresql"
                   for s in trace if served in _ancestors(s, by_id)) or service == "cart", tree

    # Saga steps with the order id and their outcome; the statements they ran under them.
    steps = {s.name: s for s in trace if s.name.startswith("saga ")}
    assert set(steps) == {"saga reserve", "saga charge", "saga confirm"}, tree
    assert [steps[n].attributes["commerce.outcome"] for n in ("saga reserve", "saga charge", "saga confirm")] == [
        "held", "captured", "confirmed"], tree
    assert all(s.attributes["commerce.order_id"] == order_id and order in _ancestors(s, by_id)
               for s in steps.values()), tree
    assert any(s.attributes.get("db.system") == "postgresql" for s in trace
               if steps["saga confirm"] in _ancestors(s, by_id)), tree

    # The outbox row, then the relay's publish, then each consumer's handling, continue the trace.
    outbox = _one(trace, "order", f"outbox {confirmed}")
    assert steps["saga confirm"] in _ancestors(outbox, by_id), tree
    publish = _one(trace, "order", f"publish {confirmed}")
    assert (publish.parent_id, publish.kind) == (outbox.span_id, "producer"), tree
    consumers = {s.service: s for s in trace if s.name == f"process {confirmed}"}
    assert set(consumers) == {"cart", "catalog", "notifications"}, tree
    assert all((s.parent_id, s.kind) == (publish.span_id, "consumer") for s in consumers.values()), tree
    smtp = _one(trace, "notifications", "smtp send")
    assert consumers["notifications"] in _ancestors(smtp, by_id), tree
    assert (smtp.kind, smtp.attributes["commerce.order_id"]) == ("client", order_id), tree

    # The worker's log line about the email leads to the trace, and to the span it was written in.
    logged = [json.loads(line) for line in traced_mesh.log_file("notifications").read_text().splitlines()
              if line.startswith("{")]
    sent = [line for line in logged if line.get("event") == "email sent" and line.get("order_id") == order_id]
    assert len(sent) == 1, logged[-5:]
    assert (sent[0]["trace_id"], sent[0]["span_id"]) == (edge.trace_id, consumers["notifications"].span_id), sent

    # The tenant on every span (but Envoy's call to the body check, whose span takes no custom tag);
    # no token, payment token or password anywhere in any span.
    body_check = [s for s in trace if s.service == "edge" and s.name == "async meshinfo_body_check egress"]
    assert len(body_check) == 1, tree
    # A service token a peer fetched meanwhile (it had none yet, or it was due) is the platform's:
    # the tenant service issues it to the service, for no tenant.
    service_token = [s for s in trace if (s.service, s.name) == (
        "tenant", "/commerce.tenant.v1.ServiceTokenService/IssueServiceToken")]
    assert [(s.service, s.name) for s in trace if s not in body_check and s not in service_token
            and s.attributes.get("commerce.tenant_id") != traced_shop.tenant_id] == []
    secrets = {buyer.token, PAYMENT_TOKEN, buyer.password, traced_shop.seller.token, traced_shop.seller.password,
               *(traced_mesh.settings.service_secret.get_secret_value(),)}
    for s in receiver.spans():
        text = repr(s)
        assert not [secret for secret in secrets if secret and secret in text], f"{s.service}: {s.name} leaks"


def test_a_declined_checkout_traces_its_compensation_with_the_reason(traced: Traced, receiver: OtlpReceiver) -> None:
    buyer = new_customer(traced.rest, traced.shop)
    product_id = stocked_product(traced.rest, traced.shop.seller, on_hand=5)
    refused = checkout(traced.rest, buyer, product_id, 1, "tok_sandbox_declined")
    assert refused.status_code == 400, refused.text
    order_id = refused.json()["details"][0]["metadata"]["order_id"]
    trace = _trace_of(receiver, order_id, {"saga reserve", "saga charge", "saga compensate",
                                           "/commerce.catalog.v1.InventoryService/ReleaseReservation", "edge"})
    tree = span_tree(trace)
    steps = {s.name: s for s in trace if s.name.startswith("saga ")}
    assert {name: (s.attributes["commerce.outcome"], s.attributes.get("commerce.reason")) for name, s in steps.items()
            } == {"saga reserve": ("held", None), "saga charge": ("failed", "PAYMENT_DECLINED"),
                  "saga compensate": ("failed", "PAYMENT_DECLINED")}, tree
    by_id = {s.span_id: s for s in trace}
    release = _one(trace, "catalog", "/commerce.catalog.v1.InventoryService/ReleaseReservation")
    assert steps["saga compensate"] in _ancestors(release, by_id), tree
    assert all(s.attributes["commerce.order_id"] == order_id for s in steps.values())
