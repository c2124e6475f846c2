"""Watchers can never take checkout's capacity at the edge: a real Envoy rendered with room
for 2 server streams (edge_max_streams) and a small unary budget in front of an order service
whose WatchOrder streams stay open. Once the streams' cluster is full, one more watcher is
refused at once (UNAVAILABLE, Envoy's circuit breaker), while unary calls of the same service
still pass: they have a cluster of their own. (The fake order service implements only the two
methods the edge needs here.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from commerce.order.v1 import order_pb2, order_pb2_grpc

from services.devmesh.envoy import Envoy
from services.devmesh.probes import http_get
from services.edge.render import ROOT
from services.runtime.settings import Settings
from tests.conftest import free_port
from tests.edge.harness import start_envoy, upstream_server, wait_ready
from tests.tokens import TestKeys

ORDER = "commerce.order.v1.OrderService"
STREAMS = 2


class Orders(order_pb2_grpc.OrderServiceServicer):
    def __init__(self) -> None:
        self.release = threading.Event()

    def GetOrder(self, request: order_pb2.GetOrderRequest, context: grpc.ServicerContext) -> order_pb2.GetOrderResponse:
        return order_pb2.GetOrderResponse(order=order_pb2.Order(order_id=request.order_id))

    def WatchOrder(self, request: order_pb2.WatchOrderRequest,
                   context: grpc.ServicerContext) -> Iterator[order_pb2.WatchOrderResponse]:
        yield order_pb2.WatchOrderResponse(order=order_pb2.Order(order_id=request.order_id))
        self.release.wait(30)  # a watcher waiting for the next change


def _stats(envoy: Envoy, cluster: str) -> dict[str, int]:
    """The counters and gauges of one upstream cluster, by name without the cluster prefix."""
    status, body = http_get(f"{envoy.admin_url}/stats?filter=^cluster\\.{cluster}\\.")
    assert status == 200, body
    prefix = f"cluster.{cluster}."
    return {name.removeprefix(prefix): int(value) for name, _, value in (line.partition(": ") for line in
            body.splitlines()) if name.startswith(prefix) and value.isdigit()}


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[tuple[Envoy, Settings, Orders]]:
    upstream = free_port()
    settings = Settings().model_copy(update={
        "edge_services": ("tenant", "order"), "descriptor_path": ROOT / "gen" / "descriptor" / "commerce.pb",
        "tenant_port": upstream, "order_port": upstream, "meshinfo_port": upstream,
        "envoy_port": free_port(), "envoy_admin_port": free_port(),
        "edge_max_streams": STREAMS, "edge_max_requests": 50,
    })
    envoy = start_envoy(tmp_path, settings)
    # Only GetOrder and WatchOrder: the others answer UNIMPLEMENTED (abstract for the typed stubs).
    orders = Orders()  # type: ignore[abstract]
    server = upstream_server(
        TestKeys(), upstream, lambda grpc_server: order_pb2_grpc.add_OrderServiceServicer_to_server(
            orders, grpc_server), extra_names=(ORDER,), workers=16)
    try:
        wait_ready(envoy, ["order", "order-streams"], jwks=False)
        yield envoy, settings, orders
    finally:
        orders.release.set()
        envoy.stop()
        server.stop(0)


def test_full_stream_capacity_refuses_one_more_watcher_and_never_a_unary_call(
        edge: tuple[Envoy, Settings, Orders]) -> None:
    envoy, settings, orders = edge
    with grpc.insecure_channel(f"127.0.0.1:{settings.envoy_port}") as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        watchers = [stub.WatchOrder(order_pb2.WatchOrderRequest(order_id=f"ord_{i}"), timeout=20)
                    for i in range(STREAMS)]
        for i, watcher in enumerate(watchers):
            assert next(watcher).order.order_id == f"ord_{i}"  # open, and waiting for more

        extra = stub.WatchOrder(order_pb2.WatchOrderRequest(order_id="ord_extra"), timeout=5)
        with pytest.raises(grpc.RpcError) as refused:
            next(extra)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        streams = _stats(envoy, "order-streams")
        assert streams["circuit_breakers.default.rq_open"] == 1  # the streams' breaker is open
        assert streams["upstream_rq_503"] >= 1

        # The unary calls of the same service have their own cluster: all pass meanwhile.
        for i in range(20):
            assert stub.GetOrder(order_pb2.GetOrderRequest(order_id=f"ord_u{i}"), timeout=5).order.order_id
        unary = _stats(envoy, "order")
        assert unary["circuit_breakers.default.rq_open"] == 0 and unary.get("upstream_rq_503", 0) == 0
        orders.release.set()
        for watcher in watchers:
            watcher.cancel()
