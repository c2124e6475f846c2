"""commerce.tenant.v1.TenantService: translates messages to use-case calls and
back. Validation lives in services.tenant.domain, rules in the use cases."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc
from commerce.tenant.v1 import tenant_pb2, tenant_pb2_grpc
from google.protobuf.message import Message

from services.runtime.context import PLATFORM_TENANT, current_caller
from services.runtime.idempotency import IdempotencyKey, key_for
from services.tenant import convert
from services.tenant.accounts import CREATE_USER, REGISTER_CUSTOMER, Accounts
from services.tenant.domain import paging
from services.tenant.domain.tenant import new_tenant, tenant_id_of_request
from services.tenant.domain.user import credentials, new_customer, new_staff, user_id_of_request
from services.tenant.keys import KeyStore
from services.tenant.tenants import CREATE, RESUME, SUSPEND, Tenants

SERVICE = tenant_pb2.DESCRIPTOR.services_by_name["TenantService"]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


def _key(method: str, request: Message, secret: str | None = None) -> IdempotencyKey | None:
    """The request's idempotency key; a secret field is left out of the stored fingerprint."""
    if secret is not None:
        copy = type(request)()
        copy.CopyFrom(request)
        copy.ClearField(secret)
        request = copy
    return key_for(method, request)


class TenantServicer(tenant_pb2_grpc.TenantServiceServicer):
    def __init__(self, tenants: Tenants, accounts: Accounts, keys: KeyStore) -> None:
        self._tenants = tenants
        self._accounts = accounts
        self._keys = keys

    async def CreateTenant(self, request: tenant_pb2.CreateTenantRequest,
                           context: Context) -> tenant_pb2.CreateTenantResponse:
        t = request.tenant
        new = new_tenant(t.tenant_id, t.display_name, t.currency_code)
        tenant = await self._tenants.create(new, _key(CREATE, request))
        return tenant_pb2.CreateTenantResponse(tenant=convert.tenant_message(tenant))

    async def GetTenant(self, request: tenant_pb2.GetTenantRequest, context: Context) -> tenant_pb2.GetTenantResponse:
        tenant = await self._tenants.get(current_caller(), tenant_id_of_request(request.tenant_id))
        return tenant_pb2.GetTenantResponse(tenant=convert.tenant_message(tenant))

    async def ListTenants(self, request: tenant_pb2.ListTenantsRequest,
                          context: Context) -> tenant_pb2.ListTenantsResponse:
        size, cursor = paging.page_size(request.page_size), paging.decode(request.page_token)
        page, next_token = await self._tenants.list_page(size, cursor)
        return tenant_pb2.ListTenantsResponse(tenants=[convert.tenant_message(t) for t in page],
                                              next_page_token=next_token)

    async def SuspendTenant(self, request: tenant_pb2.SuspendTenantRequest,
                            context: Context) -> tenant_pb2.SuspendTenantResponse:
        tenant_id = tenant_id_of_request(request.tenant_id)
        tenant = await self._tenants.suspend(tenant_id, _key(SUSPEND, request))
        return tenant_pb2.SuspendTenantResponse(tenant=convert.tenant_message(tenant))

    async def ResumeTenant(self, request: tenant_pb2.ResumeTenantRequest,
                           context: Context) -> tenant_pb2.ResumeTenantResponse:
        tenant_id = tenant_id_of_request(request.tenant_id)
        tenant = await self._tenants.resume(tenant_id, _key(RESUME, request))
        return tenant_pb2.ResumeTenantResponse(tenant=convert.tenant_message(tenant))

    async def CreateUser(self, request: tenant_pb2.CreateUserRequest,
                         context: Context) -> tenant_pb2.CreateUserResponse:
        tenant_id = tenant_id_of_request(request.tenant_id)
        new = new_staff(request.email, request.password, request.display_name, convert.role_of(request.role))
        user = await self._accounts.create_staff(current_caller(), tenant_id, new,
                                                 _key(CREATE_USER, request, "password"))
        return tenant_pb2.CreateUserResponse(user=convert.user_message(user))

    async def DeleteUser(self, request: tenant_pb2.DeleteUserRequest,
                         context: Context) -> tenant_pb2.DeleteUserResponse:
        tenant_id, user_id = user_id_of_request(request.tenant_id, request.user_id)
        await self._accounts.delete_user(current_caller(), tenant_id, user_id)
        return tenant_pb2.DeleteUserResponse()

    async def RegisterCustomer(self, request: tenant_pb2.RegisterCustomerRequest,
                               context: Context) -> tenant_pb2.RegisterCustomerResponse:
        tenant_id = tenant_id_of_request(request.tenant_id)
        new = new_customer(request.email, request.password, request.display_name)
        user = await self._accounts.register_customer(tenant_id, new, _key(REGISTER_CUSTOMER, request, "password"))
        return tenant_pb2.RegisterCustomerResponse(user=convert.user_message(user))

    async def Login(self, request: tenant_pb2.LoginRequest, context: Context) -> tenant_pb2.LoginResponse:
        tenant_id = request.tenant_id if request.tenant_id == PLATFORM_TENANT else tenant_id_of_request(
            request.tenant_id)
        token, user = await self._accounts.login(tenant_id, credentials(request.email, request.password))
        return convert.login_response(token, user)

    async def CreateGuestToken(self, request: tenant_pb2.CreateGuestTokenRequest,
                               context: Context) -> tenant_pb2.CreateGuestTokenResponse:
        token = await self._accounts.guest_token(tenant_id_of_request(request.tenant_id))
        return convert.guest_response(token)

    async def GetJwks(self, request: tenant_pb2.GetJwksRequest, context: Context) -> tenant_pb2.GetJwksResponse:
        return convert.jwks_response(self._keys.jwks())
