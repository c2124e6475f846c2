"""The W3C trace of a request travels into the events it causes and into the calls
the service makes on the mesh's behalf."""

from __future__ import annotations

from typing import Any

import grpc
from commerce.tenant.v1 import service_token_pb2, service_token_pb2_grpc

from services.runtime.db import Database
from services.runtime.events import tracing
from services.runtime.events.outbox import emit
from services.runtime.server import App, create_server
from services.runtime.service_auth import ServiceTokens
from services.runtime.settings import Settings
from tests.events.harness import order_confirmed, provisioned, scalar
from tests.tokens import TestKeys

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class EmittingServicer(service_token_pb2_grpc.ServiceTokenServiceServicer):
    """Any RPC that writes an event (this one is open to anonymous callers)."""

    def __init__(self, db: Database, tenant: str) -> None:
        self.db, self.tenant = db, tenant
        self.outgoing: Any = ()

    async def IssueServiceToken(self, request: Any, context: Any) -> service_token_pb2.IssueServiceTokenResponse:
        async with self.db.tenant(self.tenant) as conn:
            await emit(conn, order_confirmed("traced"), tenant_id=self.tenant, aggregate_id="traced")

        async def issue() -> str:
            return "token"
        self.outgoing = await ServiceTokens(Settings(), issue=issue).metadata(self.tenant)
        return service_token_pb2.IssueServiceTokenResponse()


async def test_events_and_outgoing_calls_continue_the_trace_of_the_request(db: Database) -> None:
    tenant = await provisioned(db)
    servicer = EmittingServicer(db, tenant)
    app = App(name="traced", services=[service_token_pb2.DESCRIPTOR.services_by_name["ServiceTokenService"]],
              register=lambda s: service_token_pb2_grpc.add_ServiceTokenServiceServicer_to_server(servicer, s),
              verifier=TestKeys().verifier())
    running = await create_server(app, "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            await service_token_pb2_grpc.ServiceTokenServiceStub(channel).IssueServiceToken(
                service_token_pb2.IssueServiceTokenRequest(), metadata=(("traceparent", INCOMING),))
    finally:
        await running.stop(0)
    header = await scalar(db, tenant, "SELECT headers->>'traceparent' FROM {schema}.outbox")
    assert tracing.is_valid(header) and header[3:35] == TRACE_ID and header != INCOMING
    outgoing = dict(servicer.outgoing)["traceparent"]
    assert outgoing[3:35] == TRACE_ID and outgoing != INCOMING


async def test_an_event_without_a_calling_trace_starts_its_own(db: Database) -> None:
    tenant = await provisioned(db)
    async with db.tenant(tenant) as conn:
        await emit(conn, order_confirmed("untraced"), tenant_id=tenant, aggregate_id="untraced")
    header = await scalar(db, tenant, "SELECT headers->>'traceparent' FROM {schema}.outbox")
    assert tracing.is_valid(header)
