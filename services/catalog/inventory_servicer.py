"""InventoryService over gRPC (service tokens only, as the proto declares):
request message in -> inventory use case -> response message out."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from commerce.catalog.v1 import inventory_pb2 as pb
from commerce.catalog.v1 import inventory_pb2_grpc

from services.catalog.convert import reservation_pb
from services.catalog.domain.reservation import checked_reservation_id, reserve_request
from services.catalog.inventory import Inventory
from services.runtime.context import require_tenant

SERVICE = pb.DESCRIPTOR.services_by_name["InventoryService"]
Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, inventory: Inventory) -> None:
        self._inventory = inventory

    async def ReserveStock(self, request: pb.ReserveStockRequest, context: Context) -> pb.ReserveStockResponse:
        _, tenant = require_tenant()
        wanted = reserve_request(request.reservation_id, [(line.product_id, line.quantity) for line in request.lines],
                                 request.ttl_seconds)
        return pb.ReserveStockResponse(reservation=reservation_pb(await self._inventory.reserve(tenant, wanted)))

    async def CommitReservation(self, request: pb.CommitReservationRequest,
                                context: Context) -> pb.CommitReservationResponse:
        _, tenant = require_tenant()
        committed = await self._inventory.commit(tenant, checked_reservation_id(request.reservation_id))
        return pb.CommitReservationResponse(reservation=reservation_pb(committed))

    async def ReleaseReservation(self, request: pb.ReleaseReservationRequest,
                                 context: Context) -> pb.ReleaseReservationResponse:
        _, tenant = require_tenant()
        released = await self._inventory.release(tenant, checked_reservation_id(request.reservation_id))
        return pb.ReleaseReservationResponse(reservation=reservation_pb(released))
