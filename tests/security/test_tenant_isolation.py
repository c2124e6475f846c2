"""Tenant isolation, call by call, against the real services on their own ports.

Tenant A and tenant B each have a product with stock, a stock reservation, a
confirmed order with its payment, and a customer with an item in the cart.
Every RPC whose request names a resource by id (fields ending in ``_id`` other
than ``request_id``, at the top level or one message down, read from the
descriptors) is called by every role of tenant B that may call it, naming
tenant A's resources: the answer is NOT_FOUND, the same answer as for an id
that exists nowhere (no hint), and nothing of tenant A changes. Lists of B never
carry A's ids; WatchOrder of A's order from B is NOT_FOUND."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from commerce.cart.v1 import cart_pb2
from commerce.catalog.v1 import catalog_pb2, inventory_pb2, inventory_pb2_grpc
from commerce.order.v1 import order_pb2
from commerce.payment.v1 import payment_pb2
from commerce.tenant.v1 import provisioning_pb2, service_token_pb2, tenant_pb2
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor_pb2 import FieldDescriptorProto

from tests.e2e.harness import confirmed_order, ok, stocked_product
from tests.security.calls import call
from tests.security.conftest import ROLES, Tenant
from tests.security.descriptors import RPCS, Rpc

# Every generated module is imported so the default descriptor pool knows every request type.
_MODULES = (cart_pb2, catalog_pb2, inventory_pb2, order_pb2, payment_pb2, provisioning_pb2, service_token_pb2,
            tenant_pb2)
OWNER = {"commerce.cart.v1": "cart", "commerce.catalog.v1": "catalog", "commerce.order.v1": "order",
         "commerce.payment.v1": "payment", "commerce.tenant.v1": "tenant"}

# RPCs naming a tenant-scoped resource by id that are NOT "another tenant's resource
# -> NOT_FOUND", and why. Anything else the descriptors list is tested below.
EXCEPTIONS = {
    "CatalogService.CreateProduct": "product.product_id is OUTPUT_ONLY: the product is created in the caller's tenant",
    "InventoryService.ReserveStock": "reservation_id is chosen by the caller (a new reservation); the test names "
                                     "A's product in the lines instead -> NOT_FOUND (tested below)",
    "OrderService.ListOrders": "customer_id is a filter of a list: B's list for A's customer is empty (tested below)",
    "PaymentService.ListPayments": "order_id is a filter of a list: B's list for A's order is empty (tested below)",
    "PaymentProcessingService.AuthorizePayment": "order_id is the order service's reference for a new payment of "
                                                 "the caller's tenant, not a lookup (service role only)",
    "PaymentProcessingService.ChargePayment": "order_id is the order service's reference for a new payment of "
                                              "the caller's tenant, not a lookup (service role only)",
    "PaymentService.HandleProviderWebhook": "anonymous: tenant_id in the URL names whose provider account the "
                                            "signed webhook is for; no token, so no 'other tenant'",
    "ProvisioningService.ProvisionTenant": "platform operation (admin/service): tenant_id names the tenant to create",
    "TenantService.CreateTenant": "admin only: tenant.tenant_id names the tenant to create",
    "TenantService.SuspendTenant": "admin only: the platform admin acts on every tenant by design",
    "TenantService.ResumeTenant": "admin only: the platform admin acts on every tenant by design",
    "TenantService.RegisterCustomer": "anonymous sign-up: tenant_id picks the shop",
    "TenantService.Login": "anonymous: tenant_id picks the shop",
    "TenantService.CreateGuestToken": "anonymous: tenant_id picks the shop",
}


def id_fields(rpc: Rpc) -> list[str]:
    """Fields naming a resource: ``*_id`` but request_id, top level or one message down."""
    files = descriptor_pool.Default()
    found = []
    for field in rpc.input.field:
        if field.name.endswith("_id") and field.name != "request_id":
            found.append(field.name)
        elif field.type == FieldDescriptorProto.TYPE_MESSAGE and field.type_name.startswith(".commerce."):
            nested = files.FindMessageTypeByName(field.type_name.lstrip("."))
            found += [f"{field.name}.{f.name}" for f in nested.fields if f.name.endswith("_id")]
    return found


RESOURCE_RPCS = [rpc for rpc in RPCS if id_fields(rpc)]
TESTED = [rpc for rpc in RESOURCE_RPCS if rpc.id not in EXCEPTIONS]


@dataclass(frozen=True)
class Resources:
    tenant: Tenant
    product_id: str
    reservation_id: str
    order_id: str
    payment_id: str
    customer_id: str

    @property
    def ids(self) -> dict[str, str]:
        return {"product_id": self.product_id, "reservation_id": self.reservation_id, "order_id": self.order_id,
                "payment_id": self.payment_id, "customer_id": self.customer_id,
                "user_id": self.customer_id, "tenant_id": self.tenant.tenant_id}


def _resources(rest: httpx.Client, tenant: Tenant) -> Resources:
    seller, customer = tenant.shop.seller, tenant.shop.customer
    product_id = stocked_product(rest, seller, on_hand=50)
    order = confirmed_order(rest, customer, product_id)
    # A guest's cart holds an item (the customer's cart is emptied once the order is confirmed).
    ok(rest.post("/v1/cart/items", headers=tenant.auth("guest"), json={"productId": product_id, "quantity": "2"}))
    return Resources(tenant, product_id, "", str(order["orderId"]), str(order["paymentId"]), customer.subject)


async def _reserve(channel: grpc.aio.Channel, tenant: Tenant, product_id: str) -> str:
    reservation_id = str(uuid.uuid4())
    await inventory_service(channel).ReserveStock(inventory_pb2.ReserveStockRequest(
        reservation_id=reservation_id, lines=[inventory_pb2.ReservationLine(product_id=product_id, quantity=1)],
        ttl_seconds=600), metadata=tenant.metadata("service"), timeout=10)
    return reservation_id


def inventory_service(channel: grpc.aio.Channel) -> inventory_pb2_grpc.InventoryServiceStub:
    return inventory_pb2_grpc.InventoryServiceStub(channel)


@pytest.fixture(scope="module")
async def world(rest: httpx.Client, tenant_a: Tenant, tenant_b: Tenant,
                channels: dict[str, grpc.aio.Channel]) -> tuple[Resources, Resources]:
    made = []
    for tenant in (tenant_a, tenant_b):
        resources = _resources(rest, tenant)
        reservation = await _reserve(channels["catalog"], tenant, resources.product_id)
        made.append(Resources(tenant, resources.product_id, reservation, resources.order_id, resources.payment_id,
                              resources.customer_id))
    return made[0], made[1]


def _money(minor: int) -> dict[str, Any]:
    return {"currency_code": "USD", "amount_minor": str(minor)}


# The other fields each call needs to be valid, so only the foreign id can make it fail.
EXTRA: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
    "CartService.AddCartItem": lambda ids: {"quantity": "1"},
    "CartService.UpdateCartItem": lambda ids: {"quantity": "3"},
    "CatalogService.UpdateProduct": lambda ids: {"product": {"product_id": ids["product_id"], "title": "Taken over"},
                                                 "update_mask": "title"},
    "CatalogService.SetStock": lambda ids: {"on_hand": "0"},
    "CatalogService.AdjustStock": lambda ids: {"delta": "-1"},
    "OrderService.CancelOrder": lambda ids: {"reason": "not yours"},
    "OrderService.MarkOrderShipped": lambda ids: {"carrier": "UPS", "tracking_number": "1Z999"},
    "OrderService.RequestReturn": lambda ids: {"reason": "not yours",
                                               "lines": [{"product_id": ids["product_id"], "quantity": "1"}]},
    "PaymentService.RefundPayment": lambda ids: {"amount": _money(100), "reason": "not yours"},
    "PaymentProcessingService.CapturePayment": lambda ids: {"amount": _money(100)},
    "TenantService.CreateUser": lambda ids: {"email": f"intruder-{uuid.uuid4().hex[:6]}@x.test",
                                             "password": "a-long-enough-password", "role": "USER_ROLE_SELLER"},
}


def build(rpc: Rpc, ids: dict[str, str]) -> bytes:
    body: dict[str, Any] = {name: ids[name] for name in id_fields(rpc) if "." not in name}
    if any(f.name == "request_id" for f in rpc.input.field):
        body["request_id"] = str(uuid.uuid4())
    extra = EXTRA.get(rpc.id)
    if extra is not None:
        body.update(extra(ids))
    full_name = f"{rpc.service.rsplit('.', 1)[0]}.{rpc.input.name}"
    message_type = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(full_name))
    return bytes(json_format.ParseDict(body, message_type(), ignore_unknown_fields=False).SerializeToString())


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def made_up(value: str) -> str:
    """An id of the same shape as ``value`` ("prd_" + 26 Crockford characters, a UUID, ...) that exists nowhere."""
    prefix, _, rest = value.rpartition("_")
    if prefix and len(rest) == 26:
        # A ULID: keep the time part, draw a new random part.
        return f"{prefix}_{rest[:10]}{''.join(secrets.choice(CROCKFORD) for _ in range(16))}"
    try:
        uuid.UUID(value)
    except ValueError:
        return value[:-6] + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
    return str(uuid.uuid4())


def nowhere(ids: dict[str, str]) -> dict[str, str]:
    """Ids of the same shapes that exist in no tenant."""
    return {k: made_up(v) for k, v in ids.items()}


def tenant_roles(rpc: Rpc) -> list[str]:
    """The roles of tenant B that may make the call. Admin and service tokens state the tenant
    with x-tenant-id (B here); on the tenant service the tenant is named in the request itself
    and those platform roles act on every tenant by design, so there they are left out."""
    assert rpc.rule is not None
    platform = ("admin", "service") if rpc.service == "commerce.tenant.v1.TenantService" else ()
    return [role for role in ROLES if rpc.rule.allows(role) and role not in platform]


def test_the_resource_rpcs_are_read_from_the_descriptors_and_each_is_tested_or_excused() -> None:
    names = {rpc.id for rpc in RESOURCE_RPCS}
    assert {"CatalogService.GetProduct", "OrderService.WatchOrder", "PaymentService.GetPayment",
            "CartService.AddCartItem", "InventoryService.CommitReservation"} <= names
    assert set(EXCEPTIONS) <= names, f"excused but not a resource RPC: {set(EXCEPTIONS) - names}"
    assert len(TESTED) + len(EXCEPTIONS) == len(RESOURCE_RPCS)


@pytest.mark.parametrize("rpc", TESTED, ids=[r.id for r in TESTED])
async def test_tenant_b_naming_tenant_a_resources_gets_not_found(
        rpc: Rpc, world: tuple[Resources, Resources], channels: dict[str, grpc.aio.Channel]) -> None:
    a, b = world
    channel = channels[OWNER[rpc.service.rsplit(".", 1)[0]]]
    roles = tenant_roles(rpc)
    assert roles, f"{rpc.path}: no role may call it"
    failures = []
    for role in roles:
        foreign = await call(channel, rpc, build(rpc, a.ids), b.tenant.metadata(role))
        unknown = await call(channel, rpc, build(rpc, nowhere(a.ids)), b.tenant.metadata(role))
        if foreign.code != grpc.StatusCode.NOT_FOUND:
            failures.append(f"as {role}: {foreign}")
        elif foreign.reason != unknown.reason or unknown.code != grpc.StatusCode.NOT_FOUND:
            failures.append(f"as {role}: {foreign} differs from an id that exists nowhere: {unknown}")
        # Control: the same read from A's own staff (or A's buyer: the order is theirs) finds it.
        if rpc.method.startswith(("Get", "Watch")) and role != "guest":
            own = await call(channel, rpc, build(rpc, a.ids), a.tenant.metadata(role))
            if own.code != grpc.StatusCode.OK:
                failures.append(f"as {role} of {a.tenant.tenant_id} itself: {own}")
    assert not failures, f"{rpc.path} from {b.tenant.tenant_id} naming {a.tenant.tenant_id}'s resources: {failures}"


def test_tenant_a_resources_are_untouched_by_tenant_b(
        world: tuple[Resources, Resources], rest: httpx.Client) -> None:
    # Runs after the calls above (file order): nothing B sent changed A's data.
    a, _ = world
    seller = a.tenant.shop.seller
    product = ok(rest.get(f"/v1/products/{a.product_id}", headers=seller.auth))["product"]
    assert product["title"] == "A product" and product["status"] == "PRODUCT_STATUS_ACTIVE"
    stock = ok(rest.get(f"/v1/products/{a.product_id}/stock", headers=seller.auth))["stock"]
    assert int(stock["onHand"]) == 49, stock  # 50, minus the one A's confirmed order took
    order = ok(rest.get(f"/v1/orders/{a.order_id}", headers=seller.auth))["order"]
    assert order["status"] == "ORDER_STATUS_CONFIRMED"
    payment = ok(rest.get(f"/v1/payments/{a.payment_id}", headers=seller.auth))["payment"]
    assert int(payment.get("refundedAmount", {}).get("amountMinor", 0)) == 0, payment
    cart = ok(rest.get("/v1/cart", headers=a.tenant.auth("guest")))["cart"]
    assert [(i["productId"], int(i["quantity"])) for i in cart.get("lines", [])] == [(a.product_id, 2)]
    # A's customer (whom DeleteUser named) still exists: their token works and they can log in.
    mine = ok(rest.get("/v1/orders", headers=a.tenant.shop.customer.auth))["orders"]
    assert a.order_id in {o["orderId"] for o in mine}
    customer = a.tenant.shop.customer
    assert rest.post("/v1/auth/login", json={"tenantId": a.tenant.tenant_id, "email": customer.email,
                                            "password": customer.password}).status_code == 200


def test_lists_of_tenant_b_never_carry_tenant_a_ids(
        world: tuple[Resources, Resources], rest: httpx.Client) -> None:
    a, b = world
    staff = b.tenant.shop.seller.auth
    products = ok(rest.get("/v1/products", headers=staff, params={"pageSize": 100}))["products"]
    orders = ok(rest.get("/v1/orders", headers=staff, params={"pageSize": 100}))["orders"]
    payments = ok(rest.get("/v1/payments", headers=staff, params={"pageSize": 100}))["payments"]
    mine = ok(rest.get("/v1/orders", headers=b.tenant.shop.customer.auth))["orders"]
    cart = ok(rest.get("/v1/cart", headers=b.tenant.auth("guest")))["cart"]
    # B's own data is there (the lists are not just empty) and A's is not.
    assert b.product_id in {p["productId"] for p in products} and a.product_id not in {p["productId"] for p in products}
    assert b.order_id in {o["orderId"] for o in orders} and a.order_id not in {o["orderId"] for o in orders}
    assert b.order_id in {o["orderId"] for o in mine} and a.order_id not in {o["orderId"] for o in mine}
    assert b.payment_id in {p["paymentId"] for p in payments}
    assert a.payment_id not in {p["paymentId"] for p in payments}
    assert [i["productId"] for i in cart.get("lines", [])] == [b.product_id]
    # Filters naming A's customer or A's order find nothing in B.
    by_customer = ok(rest.get("/v1/orders", headers=staff, params={"customerId": a.customer_id}))
    by_order = ok(rest.get("/v1/payments", headers=staff, params={"orderId": a.order_id}))
    assert by_customer.get("orders", []) == [] and by_order.get("payments", []) == []


async def test_a_reservation_of_tenant_b_naming_tenant_a_product_is_refused_like_a_product_that_does_not_exist(
        world: tuple[Resources, Resources], channels: dict[str, grpc.aio.Channel]) -> None:
    # ReserveStock answers FAILED_PRECONDITION (not NOT_FOUND) for a line whose product does not
    # exist: the order saga's contract. What matters here: the same answer as for no product at all.
    a, b = world
    answers = []
    for product_id in (a.product_id, made_up(a.product_id)):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _reserve(channels["catalog"], b.tenant, product_id)
        answers.append((refused.value.code(), (refused.value.details() or "").replace(product_id, "<id>")))
    assert answers[0] == answers[1], answers
    assert answers[0][0] in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION), answers


async def test_watching_tenant_a_order_from_tenant_b_is_not_found_while_a_watches_it(
        world: tuple[Resources, Resources], channels: dict[str, grpc.aio.Channel]) -> None:
    a, b = world
    watch = next(rpc for rpc in RPCS if rpc.id == "OrderService.WatchOrder")
    request = order_pb2.WatchOrderRequest(order_id=a.order_id).SerializeToString()
    own = await call(channels["order"], watch, request, a.tenant.metadata("seller"))
    assert own.code == grpc.StatusCode.OK, own  # A sees its order's stream
    for role in ("seller", "customer", "admin"):
        other = await call(channels["order"], watch, request, b.tenant.metadata(role))
        assert other.code == grpc.StatusCode.NOT_FOUND, f"as {role} of B: {other}"
