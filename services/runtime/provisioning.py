"""ProvisioningService, served by every service with per-tenant data: creates
(or migrates) the tenant's schema in this service's database. Idempotent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from commerce.tenant.v1 import provisioning_pb2, provisioning_pb2_grpc

from services.runtime.db import TENANT_ID_PATTERN, Database
from services.runtime.errors import InvalidArgument
from services.runtime.migrations import upgrade_tenant

SERVICE = provisioning_pb2.DESCRIPTOR.services_by_name["ProvisioningService"]


class ProvisioningServicer(provisioning_pb2_grpc.ProvisioningServiceServicer):
    def __init__(self, db: Database, script_location: Path) -> None:
        self._db = db
        self._script_location = script_location

    async def ProvisionTenant(
        self, request: provisioning_pb2.ProvisionTenantRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> provisioning_pb2.ProvisionTenantResponse:
        if not TENANT_ID_PATTERN.fullmatch(request.tenant_id):
            raise InvalidArgument.field("tenant_id", "3-32 of a-z 0-9 '-', starting with a letter")
        schema, revision = await upgrade_tenant(self._db, request.tenant_id, self._script_location)
        return provisioning_pb2.ProvisionTenantResponse(schema=schema, revision=revision)
