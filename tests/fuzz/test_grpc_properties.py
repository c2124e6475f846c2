"""Property tests over the gRPC API, straight to the catalog, cart and order ports
(no edge in front): requests whose every field holds arbitrary strings, integers,
enum numbers (unknown ones too), timestamps, masks and nested messages. Every answer
is OK or a clean, expected status — never UNKNOWN or INTERNAL — and INVALID_ARGUMENT
carries a google.rpc.BadRequest naming a field of the request. The methods are read
from the descriptors, so a new RPC is fuzzed without being listed here."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
from commerce.access.v1 import access_pb2
from commerce.cart.v1 import cart_pb2
from commerce.catalog.v1 import catalog_pb2
from commerce.order.v1 import order_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from services.devmesh.mesh import Mesh
from tests.e2e.harness import Account, Shop, create_product
from tests.errors import rich_status, violated_fields

SERVICES = {"catalog": catalog_pb2, "cart": cart_pb2, "order": order_pb2}
EXAMPLES = int(os.environ.get("FUZZ_GRPC_EXAMPLES", "50"))
# Answers a well-behaved service may give to arbitrary input from an authorised caller.
CLEAN = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
         grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.PERMISSION_DENIED,
         grpc.StatusCode.ABORTED, grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.RESOURCE_EXHAUSTED}
ROLE = access_pb2.Role
ANSWERS: Counter[tuple[str, str]] = Counter()  # (method, status) of every call made
INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1), FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1), FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _methods() -> list[tuple[str, MethodDescriptor]]:
    found = []
    for owner, module in SERVICES.items():
        for service in module.DESCRIPTOR.services_by_name.values():
            found += [(owner, m) for m in service.methods if not m.server_streaming]
    return found


def _has_role(method: MethodDescriptor, role: int) -> bool:
    rule: Any = method.GetOptions().Extensions[access_pb2.access]  # type: ignore[index]
    return role in rule.roles


class Requests:
    """Hypothesis strategies for request messages, with a few real values mixed in
    (an existing product id, the shop's currency) so calls get past the first lookups."""

    def __init__(self, known_strings: list[str]) -> None:
        self.text = st.one_of(st.text(max_size=40), st.text(max_size=300), st.sampled_from(known_strings))

    def integer(self, kind: int) -> st.SearchStrategy[int]:
        low, high = INT_RANGES[kind]
        return st.one_of(st.integers(-3, 5).filter(lambda v: low <= v <= high), st.integers(low, high))

    def scalar(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        kind = field.type
        if field.message_type is not None:
            return self.message(field.message_type, depth + 1)
        if field.enum_type is not None:
            values = [v.number for v in field.enum_type.values]
            return st.one_of(st.sampled_from(values), st.integers(-5, 1000))
        if kind == FieldDescriptor.TYPE_STRING:
            return self.text
        if kind == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=64)
        if kind == FieldDescriptor.TYPE_BOOL:
            return st.booleans()
        if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            return st.floats(allow_nan=True, allow_infinity=True, width=32)
        return self.integer(kind)

    def message(self, message: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
        cls = message_factory.GetMessageClass(message)
        if message.full_name == "google.protobuf.Timestamp":
            return st.builds(lambda s, n: cls(seconds=s, nanos=n), st.integers(-(2**40), 2**40),
                             st.integers(-(10**9), 2 * 10**9))
        if message.full_name == "google.protobuf.FieldMask":
            names = [f.name for f in message.fields]  # nonsense on purpose too
            return st.builds(lambda paths: cls(paths=paths),
                             st.lists(st.one_of(self.text, st.sampled_from(names or ["x"])), max_size=4))
        if depth > 3:
            return st.just(cls())
        fields: dict[str, st.SearchStrategy[Any]] = {}
        for field in message.fields:
            entry = field.message_type
            if entry is not None and entry.GetOptions().map_entry:
                fields[field.name] = st.dictionaries(self.text, self.scalar(entry.fields_by_name["value"], depth),
                                                     max_size=3)
            elif field.is_repeated:
                fields[field.name] = st.lists(self.scalar(field, depth), max_size=3)
            else:
                fields[field.name] = self.scalar(field, depth)

        @st.composite
        def build(draw: st.DrawFn) -> Message:
            made = cls()
            for name, strategy in fields.items():
                if not draw(st.booleans()):
                    continue  # absent / default
                value = draw(strategy)
                target = getattr(made, name)
                if isinstance(value, dict):
                    for key, item in value.items():
                        if isinstance(item, Message):
                            target[key].CopyFrom(item)
                        else:
                            target[key] = item
                elif isinstance(value, list):
                    for item in value:
                        target.add().CopyFrom(item) if isinstance(item, Message) else target.append(item)
                elif isinstance(value, Message):
                    target.CopyFrom(value)
                else:
                    setattr(made, name, value)
            return made

        return build()


@pytest.fixture(scope="module")
def known_strings(fuzz_rest: httpx.Client, fuzz_shop: Shop) -> list[str]:
    product = create_product(fuzz_rest, fuzz_shop.seller)
    return [product["productId"], product["sku"], "USD", "EUR", "", "e2e", fuzz_shop.tenant_id,
            "00000000-0000-0000-0000-000000000000"]


@pytest.fixture(scope="module")
def channels(fuzz_mesh: Mesh) -> Iterator[dict[str, grpc.Channel]]:
    opened = {owner: grpc.insecure_channel(fuzz_mesh.address_of(owner)) for owner in SERVICES}
    yield opened
    for channel in opened.values():
        channel.close()


def _top_field(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _problem(method: MethodDescriptor, error: grpc.RpcError) -> str | None:
    """What is wrong with this error answer, or None when it is a clean one."""
    code = error.code()
    if code not in CLEAN:
        return f"{code.name}: {error.details()}"
    if code != grpc.StatusCode.INVALID_ARGUMENT:
        return None
    if rich_status(error) is None:
        return f"INVALID_ARGUMENT without a google.rpc.Status: {error.details()}"
    names = {f.name for f in method.input_type.fields} | {f.json_name for f in method.input_type.fields}
    fields = violated_fields(error)
    if fields:
        if all(_top_field(f) in names for f in fields):
            return None
        return f"INVALID_ARGUMENT naming no field of {method.input_type.name}: {fields} ({error.details()})"
    return f"INVALID_ARGUMENT without BadRequest: {error.details()}"


@pytest.mark.parametrize(("owner", "method"), _methods(), ids=lambda v: v.full_name if hasattr(v, "full_name") else v)
def test_arbitrary_field_values_get_ok_or_a_clean_error_never_unknown_or_internal(
        owner: str, method: MethodDescriptor, channels: dict[str, grpc.Channel], fuzz_shop: Shop,
        fuzz_owner: Account, known_strings: list[str]) -> None:
    if _has_role(method, ROLE.ROLE_SELLER):
        metadata = fuzz_shop.seller.metadata
    elif _has_role(method, ROLE.ROLE_CUSTOMER):
        metadata = fuzz_shop.customer.metadata
    else:
        assert _has_role(method, ROLE.ROLE_OWNER), f"{method.full_name}: no role of the shop may call it"
        metadata = fuzz_owner.metadata
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    call = channels[owner].unary_unary(f"/{method.containing_service.full_name}/{method.name}",
                                       request_serializer=request_cls.SerializeToString,
                                       response_deserializer=response_cls.FromString)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(request=Requests(known_strings).message(method.input_type))
    def answer_is_clean(request: Message) -> None:
        try:
            call(request, metadata=metadata, timeout=10)
            ANSWERS[(method.name, grpc.StatusCode.OK.name)] += 1
        except grpc.RpcError as error:
            ANSWERS[(method.name, error.code().name)] += 1
            problem = _problem(method, error)
            assert problem is None, f"{method.full_name}({request}) -> {problem}"

    answer_is_clean()



def test_the_fuzzing_got_past_validation_to_real_lookups_and_writes() -> None:
    """Not vacuous: arbitrary requests were refused as invalid, others reached the data."""
    codes = Counter(code for (_, code), count in ANSWERS.items() for _ in range(count))
    assert codes["INVALID_ARGUMENT"] > 0 and codes["NOT_FOUND"] > 0 and codes["OK"] > 0, dict(codes)
    answered_ok = {name for (name, code) in ANSWERS if code == "OK"}
    assert {"GetProduct", "ListProducts", "GetCart", "ListOrders"} <= answered_ok, sorted(answered_ok)


NUL_CASES = [
    ("order", "OrderService", "ListOrders", order_pb2.ListOrdersRequest(customer_id="\x00")),
    ("order", "OrderService", "GetOrder", order_pb2.GetOrderRequest(order_id="\x00")),
    ("catalog", "CatalogService", "ListProducts", catalog_pb2.ListProductsRequest(query="a\x00b")),
    ("catalog", "CatalogService", "ListProducts", catalog_pb2.ListProductsRequest(category="\x00")),
    ("catalog", "CatalogService", "GetProduct", catalog_pb2.GetProductRequest(product_id="\x00")),
    ("cart", "CartService", "AddCartItem", cart_pb2.AddCartItemRequest(product_id="\x00", quantity=1)),
]


@pytest.mark.parametrize(("owner", "service", "method", "request_message"), NUL_CASES,
                         ids=[f"{c[2]}-{i}" for i, c in enumerate(NUL_CASES)])
def test_a_nul_character_in_a_string_field_gets_ok_or_a_clean_error_never_internal(
        owner: str, service: str, method: str, request_message: Message, channels: dict[str, grpc.Channel],
        fuzz_shop: Shop) -> None:
    module = SERVICES[owner]
    descriptor = module.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    metadata = fuzz_shop.seller.metadata if _has_role(descriptor, ROLE.ROLE_SELLER) else fuzz_shop.customer.metadata
    call = channels[owner].unary_unary(f"/{descriptor.containing_service.full_name}/{method}",
                                       request_serializer=type(request_message).SerializeToString,
                                       response_deserializer=message_factory.GetMessageClass(
                                           descriptor.output_type).FromString)
    try:
        call(request_message, metadata=metadata, timeout=10)
    except grpc.RpcError as error:
        assert _problem(descriptor, error) is None
