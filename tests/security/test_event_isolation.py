"""Events never carry another tenant's data, on the session's real mesh and its NATS.

A JetStream consumer of every event (stream COMMERCE, ``commerce.>``) is created
before any traffic. Then tenant A and tenant B each: a new customer registers, a
seller creates a product and sets its stock just above the low-stock threshold,
the customer puts two in the cart, places an order that is confirmed (stock
reserved and committed, payment authorized and captured) and cancels it (payment
refunded). Every event published meanwhile is decoded with the type its
``Commerce-Event-Type`` header names, and for each one: the tenant in its subject,
its ``Commerce-Tenant`` header and its ``metadata.tenant_id`` are one tenant; every
``tenant_id`` field anywhere inside is that tenant; and none of the other tenant's
ids, emails or tenant id appear anywhere in its payload or headers. Each tenant's
flow must have produced its expected events, naming its own resources, so these
checks cannot pass on no events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import nats
import nats.errors
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.catalog.domain.reservation import LOW_STOCK_THRESHOLD
from services.devmesh.mesh import Mesh
from services.runtime.events import naming, registry
from tests.e2e.harness import ADDRESS, create_product, new_customer, ok, order_when, product_json
from tests.security.conftest import Tenant

# What one tenant's flow publishes, at least.
EXPECTED = {
    "commerce.tenant.v1.UserRegistered", "commerce.catalog.v1.ProductCreated", "commerce.catalog.v1.ProductsImported",
    "commerce.order.v1.OrderConfirmed", "commerce.order.v1.OrderCancelled",
    "commerce.catalog.v1.LowStock",
    "commerce.payment.v1.PaymentCaptured",
    "commerce.payment.v1.PaymentRefunded", "commerce.order.v1.OrderRefunded",
}
# The resource each of these events must name, from what the edge answered that tenant.
NAMES = {
    "commerce.order.v1.OrderConfirmed": ("order_id", "customer_id", "product_id", "payment_id"),
    "commerce.order.v1.OrderCancelled": ("order_id",),
    "commerce.catalog.v1.ProductCreated": ("product_id",),
    "commerce.catalog.v1.ProductsImported": ("imported_id",),
    "commerce.catalog.v1.LowStock": ("product_id",),
    "commerce.payment.v1.PaymentCaptured": ("payment_id", "order_id"),
    "commerce.payment.v1.PaymentRefunded": ("payment_id",),
    "commerce.order.v1.OrderRefunded": ("order_id", "payment_id"),
    "commerce.tenant.v1.UserRegistered": ("customer_id",),
}
WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Flow:
    """What the edge answered one tenant: its resources, by kind."""

    tenant_id: str
    resources: dict[str, str]


@dataclass(frozen=True)
class Event:
    subject: str
    headers: dict[str, str]
    payload: bytes
    message: Message

    @property
    def type(self) -> str:
        return self.headers.get(naming.EVENT_TYPE, "")

    @property
    def tenant(self) -> str:
        """The tenant its subject names (``commerce.<domain>.v1.<event>.<tenant_id>``)."""
        return self.subject.rsplit(".", 1)[-1]


@dataclass
class Observed:
    flows: dict[str, Flow]
    events: list[Event] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)
    dead_letters: list[Msg] = field(default_factory=list)

    def of(self, tenant_id: str) -> list[Event]:
        return [e for e in self.events if e.tenant == tenant_id]

    def types(self, tenant_id: str) -> set[str]:
        return {e.type for e in self.of(tenant_id)}


def leaves(message: Message, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, field name, value) of every scalar set anywhere in ``message``, recursively."""
    for fd, value in message.ListFields():
        here = f"{path}{fd.name}"
        entry = fd.message_type if fd.type == FieldDescriptor.TYPE_MESSAGE else None
        if entry is not None and entry.GetOptions().map_entry:
            nested = entry.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE
            items = [(f"{here}[{k}]", v) for k, v in value.items()]
        else:
            nested = entry is not None
            items = [(f"{here}[{i}]", v) for i, v in enumerate(value)] if fd.is_repeated else [(here, value)]
        for where, item in items:
            if nested:
                yield from leaves(item, f"{where}.")
            else:
                yield where, fd.name, item


def ids_in(event: Event) -> set[str]:
    """Every id an event carries (fields named ``*_id`` but tenant_id): the resources it is about."""
    return {str(v) for _, name, v in leaves(event.message)
            if name.endswith("_id") and name != "tenant_id" and isinstance(v, str) and v}


def drive(rest: httpx.Client, tenant: Tenant) -> Flow:
    """Tenant's flow through the REST edge; what it answered."""
    tenant_id, seller = tenant.tenant_id, tenant.shop.seller
    buyer = new_customer(rest, tenant.shop)
    product = create_product(rest, seller)
    product_id = str(product["productId"])
    imported = ok(rest.post("/v1/products:import", headers=seller.auth, json={"entries": [
        {"product": product_json(), "onHand": "3"}]}))["results"][0]["productId"]
    # Two bought from threshold + 1 on hand: the reservation takes availability below the threshold.
    ok(rest.put(f"/v1/products/{product_id}/stock", headers=seller.auth,
                json={"onHand": str(LOW_STOCK_THRESHOLD + 1)}))
    cart = ok(rest.post("/v1/cart/items", headers=buyer.auth, json={"productId": product_id, "quantity": "2"}))["cart"]
    placed = ok(rest.post("/v1/orders", headers=buyer.auth, json={
        "requestId": str(uuid.uuid4()), "paymentToken": "tok_sandbox_ok", "email": buyer.email,
        "shippingAddress": ADDRESS}))["order"]
    order = order_when(rest, buyer.auth, str(placed["orderId"]))
    assert order["status"] == "ORDER_STATUS_CONFIRMED", order
    ok(rest.post(f"/v1/orders/{order['orderId']}:cancel", headers=buyer.auth, json={"reason": "changed my mind"}))
    cancelled = order_when(rest, buyer.auth, str(order["orderId"]), {"ORDER_STATUS_CANCELLED"})
    assert cancelled["status"] == "ORDER_STATUS_CANCELLED", cancelled
    return Flow(tenant_id, {
        "customer_id": buyer.subject, "email": buyer.email, "sku": str(product["sku"]), "product_id": product_id,
        "cart_id": str(cart.get("cartId", "")), "order_id": str(order["orderId"]), "imported_id": str(imported),
        "payment_id": str(order["paymentId"]), "order_request_id": str(order.get("requestId", "")),
    })


async def _collect(sub: Any, observed: Observed) -> int:
    """Fetch what is there now; how many messages came."""
    try:
        messages = await sub.fetch(256, timeout=0.5)
    except (TimeoutError, nats.errors.TimeoutError):
        return 0
    for msg in messages:
        headers = dict(msg.headers or {})
        try:
            message = registry.decode(headers.get(naming.EVENT_TYPE, ""), msg.data)
        except Exception as exc:
            observed.undecodable.append(f"{msg.subject} {headers}: {type(exc).__name__}: {exc}")
            continue
        observed.events.append(Event(msg.subject, headers, bytes(msg.data), message))
    return len(messages)


@pytest.fixture(scope="module")
async def observed(mesh: Mesh, rest: httpx.Client, tenant_a: Tenant, tenant_b: Tenant) -> AsyncIterator[Observed]:
    nc = await nats.connect(mesh.nats_url, max_reconnect_attempts=2)
    try:
        # Created before any traffic: it gets every event published from now on.
        every = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.NEW, inactive_threshold=120.0)
        sub = await nc.jetstream().pull_subscribe(naming.STREAM_SUBJECTS[0], stream=naming.STREAM, config=every)
        found = Observed(flows={})
        dead = await nc.subscribe(naming.DLQ_SUBJECTS[0], cb=_append_to(found.dead_letters))
        await nc.flush()
        for tenant in (tenant_a, tenant_b):  # in a thread: the flows poll, NATS keeps reading meanwhile
            found.flows[tenant.tenant_id] = await asyncio.to_thread(drive, rest, tenant)
        deadline = time.monotonic() + WAIT_SECONDS
        while (any(not EXPECTED <= found.types(t) for t in found.flows) and time.monotonic() < deadline):
            await _collect(sub, found)
        while await _collect(sub, found):  # the stragglers (events of the last steps)
            pass
        await sub.unsubscribe()
        await dead.unsubscribe()
        yield found
    finally:
        await nc.close()


def _append_to(sink: list[Msg]) -> Any:
    async def append(msg: Msg) -> None:
        sink.append(msg)
    return append


def test_each_tenant_flow_published_its_events_naming_its_own_resources(observed: Observed) -> None:
    assert not observed.undecodable, observed.undecodable
    for tenant_id, flow in observed.flows.items():
        missing = EXPECTED - observed.types(tenant_id)
        assert not missing, f"{tenant_id}: no {sorted(missing)} among {sorted(observed.types(tenant_id))}"
        named = {kind for e in observed.of(tenant_id) for kind in NAMES.get(e.type, ())
                 if flow.resources[kind] in ids_in(e)}
        wanted = {kind for kinds in NAMES.values() for kind in kinds}
        assert named == wanted, f"{tenant_id}: its events never named its {sorted(wanted - named)}"


def test_every_event_names_one_tenant_in_its_subject_header_and_metadata(observed: Observed) -> None:
    assert observed.events
    wrong = []
    for event in observed.events:
        meta = event.message.metadata  # type: ignore[attr-defined]
        said = {"subject": event.tenant, "header": event.headers.get(naming.TENANT, ""), "metadata": meta.tenant_id}
        if len(set(said.values())) != 1:
            wrong.append(f"{event.subject}: {said}")
        if event.subject != naming.subject_for(event.message.DESCRIPTOR, meta.tenant_id):
            wrong.append(f"{event.subject}: not the subject of a {event.type} of {meta.tenant_id}")
        if meta.event_type != event.type or event.headers.get(naming.MSG_ID) != meta.event_id:
            wrong.append(f"{event.subject}: headers {event.headers} disagree with metadata {meta}")
    assert not wrong, "\n".join(wrong)


def test_every_tenant_id_inside_an_event_is_the_event_tenant(observed: Observed) -> None:
    wrong = [f"{event.subject}: {path} = {value!r}" for event in observed.events
             for path, name, value in leaves(event.message) if name == "tenant_id" and value != event.tenant]
    assert not wrong, "\n".join(wrong)


def test_no_event_of_one_tenant_carries_anything_of_the_other(observed: Observed) -> None:
    # Each tenant's own: its tenant id, what the edge answered it, and every id its events carry
    # (reservation, refund and event ids the edge never shows).
    own: dict[str, set[str]] = {}
    for tenant_id, flow in observed.flows.items():
        carried = {i for event in observed.of(tenant_id) for i in ids_in(event)}
        own[tenant_id] = {tenant_id, *(v for v in flow.resources.values() if v), *carried}
    assert all(len(values) > 10 for values in own.values()), own
    leaked = []
    for event in observed.events:
        text = event.payload + b"".join(f"{k}: {v}\n".encode() for k, v in event.headers.items())
        for tenant_id, values in own.items():
            if tenant_id == event.tenant:
                continue
            leaked += [f"{event.subject} ({event.type}) carries {tenant_id}'s {value!r}"
                       for value in sorted(values) if value.encode() in text]
    assert not leaked, "\n".join(leaked)


def test_no_event_of_either_tenant_was_dead_lettered(observed: Observed) -> None:
    dead = [f"{msg.subject}: {dict(msg.headers or {})}" for msg in observed.dead_letters
            if msg.subject.rsplit(".", 1)[-1] in observed.flows]
    assert not dead, "\n".join(dead)
