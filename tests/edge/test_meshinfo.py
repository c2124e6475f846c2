"""meshinfo answers health for the whole mesh by asking each service's own
health endpoint, and reflects every enabled commerce service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from services.edge.descriptors import load_descriptor_set
from services.edge.render import descriptor_file
from services.meshinfo.bodycheck import BodyChecker
from services.meshinfo.reflection import mesh_pool
from services.meshinfo.server import Running, create_server
from services.runtime.settings import Settings

CATALOG = "commerce.catalog.v1.CatalogService"
TENANT = "commerce.tenant.v1.TenantService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class ServiceHealth:
    """A service's own grpc.health.v1 endpoint, as each service process serves it."""

    server: grpc.aio.Server
    servicer: health.aio.HealthServicer
    port: int

    async def set(self, name: str, status: int) -> None:
        await self.servicer.set(name, status)


async def _service_health(names: list[str]) -> ServiceHealth:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    for name in ["", *names]:
        await servicer.set(name, SERVING)
    return ServiceHealth(server, servicer, port)


@dataclass
class World:
    tenant: ServiceHealth
    catalog: ServiceHealth
    meshinfo: Running
    channel: grpc.aio.Channel

    async def check(self, service: str) -> int:
        reply = await health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    tenant = await _service_health([TENANT])
    catalog = await _service_health([CATALOG])
    settings = Settings().model_copy(update={"tenant_port": tenant.port, "catalog_port": catalog.port,
                                            "edge_services": ("tenant", "catalog")})
    meshinfo = await create_server(settings, "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{meshinfo.port}")
    yield World(tenant, catalog, meshinfo, channel)
    await channel.close()
    await meshinfo.stop(0)
    await tenant.server.stop(0)
    await catalog.server.stop(0)


async def test_check_reports_what_the_owning_service_reports(world: World) -> None:
    assert await world.check(CATALOG) == SERVING
    await world.catalog.set(CATALOG, NOT_SERVING)
    assert await world.check(CATALOG) == NOT_SERVING
    assert await world.check(TENANT) == SERVING


async def test_the_whole_mesh_is_serving_only_while_every_service_is(world: World) -> None:
    assert await world.check("") == SERVING
    await world.tenant.set("", NOT_SERVING)
    assert await world.check("") == NOT_SERVING


async def test_a_service_that_is_down_is_not_serving(world: World) -> None:
    await world.catalog.server.stop(0)
    assert await world.check(CATALOG) == NOT_SERVING
    assert await world.check("") == NOT_SERVING


async def test_an_unknown_service_name_is_not_found(world: World) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await world.check("commerce.nothing.v1.NothingService")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_streams_the_current_status_then_changes(world: World) -> None:
    call = health_pb2_grpc.HealthStub(world.channel).Watch(health_pb2.HealthCheckRequest(service=CATALOG),
                                                          timeout=10)
    first = await call.read()
    await world.catalog.set(CATALOG, NOT_SERVING)
    second = await call.read()
    call.cancel()
    assert (first.status, second.status) == (SERVING, NOT_SERVING)


async def _reflect(channel: grpc.aio.Channel, request: reflection_pb2.ServerReflectionRequest,
                   ) -> reflection_pb2.ServerReflectionResponse:
    call = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(timeout=5)
    await call.write(request)
    await call.done_writing()
    response = await call.read()
    return response


async def test_reflection_lists_the_enabled_services_health_and_reflection(world: World) -> None:
    reply = await _reflect(world.channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    assert sorted(s.name for s in reply.list_services_response.service) == [
        CATALOG, TENANT, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"]


async def test_reflection_describes_a_commerce_service(world: World) -> None:
    reply = await _reflect(world.channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=CATALOG))
    files = [descriptor_pb2.FileDescriptorProto.FromString(b)
             for b in reply.file_descriptor_response.file_descriptor_proto]
    methods = {m.name for f in files for s in f.service if s.name == "CatalogService" for m in s.method}
    assert {"CreateProduct", "ListProducts", "GetProduct"} <= methods


async def _ask_body_check(port: int, method: str, path: str, body: bytes) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        reply = await client.request(method, f"/check{path}", content=body,
                                     headers={"content-type": "application/json"})
    return reply.status_code, (reply.json() if reply.content else {})


async def test_body_check_refuses_unknown_fields_naming_each_one(world: World) -> None:
    body = b'{"product": {"sku": "A-1", "colour": "red", "price": {"amountMinor": 1, "cents": 2}}, "extra": 1}'
    status, reply = await _ask_body_check(world.meshinfo.check_port, "POST", "/v1/products", body)
    assert status == 400
    assert reply["code"] == 3
    violations = reply["details"][1]["fieldViolations"]  # type: ignore[index]
    assert [v["field"] for v in violations] == ["product.colour", "product.price.cents", "extra"]


async def test_body_check_reads_the_body_as_the_message_the_binding_names(world: World) -> None:
    port = world.meshinfo.check_port
    # PATCH /v1/products/{product.product_id} has body "product": keys are Product's fields.
    assert (await _ask_body_check(port, "PATCH", "/v1/products/p1?updateMask=title", b'{"title": "x"}'))[0] == 200
    status, reply = await _ask_body_check(port, "PATCH", "/v1/products/p1", b'{"title": "x", "requestId": "r"}')
    assert status == 400 and "product.requestId" in str(reply["message"])


async def test_body_check_lets_known_fields_through_by_either_name(world: World) -> None:
    port = world.meshinfo.check_port
    login = b'{"tenantId": "demo", "email": "a@b.test", "password": "secret-secret"}'
    assert (await _ask_body_check(port, "POST", "/v1/auth/login", login))[0] == 200
    assert (await _ask_body_check(port, "POST", "/v1/auth/login", b'{"tenant_id": "demo"}'))[0] == 200
    assert (await _ask_body_check(port, "POST", "/v1/auth/login", b""))[0] == 200  # an empty message


STRICT = [  # body of PUT /v1/products/p1/stock (SetStockRequest: onHand int64, requestId) -> reason
    (b'{"onHand": "5", "requestId": "r",}', "MALFORMED_JSON"),
    (b"{'onHand': '5'}", "MALFORMED_JSON"),
    (b'{onHand: "5"}', "MALFORMED_JSON"),
    (b'{"onHand": "5" /* comment */}', "MALFORMED_JSON"),
    (b'{"onHand": NaN}', "MALFORMED_JSON"),
    (b'{"onHand": Infinity}', "MALFORMED_JSON"),
    (b'{"requestId": "\xff"}', "MALFORMED_JSON"),
    (b'{"requestId": "\\ud800"}', "MALFORMED_JSON"),
    (b'{"onHand": ', "MALFORMED_JSON"),
    (b'{"onHand": "5", "onHand": "6"}', "DUPLICATE_FIELD"),
    (b'{"onHand": "5", "on_hand": "6"}', "DUPLICATE_FIELD"),
    (b'{"onHand": "5", "x": ' + b"[" * 40 + b"]" * 40 + b"}", "JSON_TOO_DEEP"),
    (b"[" * 10_000 + b"]" * 10_000, "JSON_TOO_DEEP"),
    (b'{"onHand": "5", "colour": "red"}', "UNKNOWN_FIELD"),
    (b'{"onHand": 1.5}', "INVALID_FIELD_VALUE"),
    (b'{"onHand": "x"}', "INVALID_FIELD_VALUE"),
    (b'{"requestId": 7}', "INVALID_FIELD_VALUE"),
    (b'["5"]', "INVALID_FIELD_VALUE"),
]


@pytest.mark.parametrize(("body", "reason"), STRICT)
async def test_body_check_refuses_what_protojson_refuses_with_its_reason(world: World, body: bytes,
                                                                          reason: str) -> None:
    status, reply = await _ask_body_check(world.meshinfo.check_port, "PUT", "/v1/products/p1/stock", body)
    assert status == 400, reply
    assert reply["code"] == 3 and reply["message"]
    info = reply["details"][0]  # type: ignore[index]
    assert (info["@type"], info["reason"], info["domain"]) == (
        "type.googleapis.com/google.rpc.ErrorInfo", reason, "commerce-mesh")


async def test_body_check_lets_protojson_forms_through(world: World) -> None:
    for body in (b'{"onHand": 5}', b'{"onHand": "5"}', b'{"onHand": 5e0}', b'{"on_hand": "5", "requestId": null}',
                 b' {"onHand": "5"} '):
        assert (await _ask_body_check(world.meshinfo.check_port, "PUT", "/v1/products/p1/stock", body))[0] == 200


def test_body_check_leaves_a_raw_http_body_alone() -> None:
    files = load_descriptor_set(descriptor_file(Settings()))
    checker = BodyChecker(files, mesh_pool(files), ["commerce.payment.v1.PaymentService"])
    # The payment webhook's body is a google.api.HttpBody: the provider's bytes, signed as they are.
    webhook = b'{"event_id": "evt_1", "type": "payment.captured", "provider_reference": "x", "anything": 1}'
    assert checker.check("POST", "/v1/payments/webhooks/sandbox/demo", webhook) is None
    # while a JSON body of the same service is still checked
    refused = checker.check("POST", "/v1/payments/p1:refund", b'{"cents": 1}')
    assert refused is not None and [v.field for v in refused.violations] == ["cents"]
