"""Deleting users and suspending tenants take back the tokens already issued:
the tenant service writes UserDeleted / TenantSuspended to its outbox in the
same transaction, the relay publishes them on the real NATS JetStream, and
every verifier following them (here the tenant service's own, and a second
process-like verifier started afterwards) refuses those tokens before they
expire, while other users' tokens keep working."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

import grpc
from commerce.tenant.v1 import tenant_events_pb2, tenant_pb2

from services.runtime.bootstrap import revocation_feed
from services.runtime.errors import Unauthenticated
from services.runtime.tokens import Jwk, KeySet, TokenVerifier
from services.tenant.keys import KeyStore
from tests.tenant.conftest import OWNER_PASSWORD, Mesh
from tests.tenant.harness import bearer, count_rows, failure_of, published

PREFIX = "tt7"


async def _eventually(what: str, check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def _refused(mesh: Mesh, token: str, tenant_id: str) -> str:
    """The ErrorInfo reason GetTenant answers with this token ("" when it was accepted)."""
    try:
        await mesh.client.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=tenant_id), metadata=bearer(token))
    except grpc.aio.AioRpcError:
        failure = await failure_of(mesh.client.stub.GetTenant(tenant_pb2.GetTenantRequest(tenant_id=tenant_id),
                                                              metadata=bearer(token)))
        assert failure.code == grpc.StatusCode.UNAUTHENTICATED, failure
        return failure.reason
    return ""


async def test_a_deleted_users_token_is_refused_before_it_expires_and_they_cannot_log_in(mesh: Mesh) -> None:
    tenant_id, owner = await mesh.tenant_with_owner()
    seller = await mesh.add_user(tenant_id, "seller@shop.example", tenant_pb2.USER_ROLE_SELLER, token=owner)
    other = await mesh.add_user(tenant_id, "other@shop.example", tenant_pb2.USER_ROLE_SELLER, token=owner)
    seller_token = await mesh.client.login(tenant_id, "seller@shop.example", OWNER_PASSWORD)
    other_token = await mesh.client.login(tenant_id, "other@shop.example", OWNER_PASSWORD)
    assert await _refused(mesh, seller_token, tenant_id) == ""

    await mesh.client.stub.DeleteUser(tenant_pb2.DeleteUserRequest(tenant_id=tenant_id, user_id=seller.user_id),
                                      metadata=bearer(owner))

    async def seller_refused() -> bool:
        return await _refused(mesh, seller_token, tenant_id) == "USER_DELETED"

    await _eventually("the deleted seller's token to be refused", seller_refused)
    assert await _refused(mesh, other_token, tenant_id) == "", "only the deleted user's tokens are taken back"
    assert await _refused(mesh, owner, tenant_id) == ""
    failure = await failure_of(mesh.client.stub.Login(tenant_pb2.LoginRequest(
        tenant_id=tenant_id, email="seller@shop.example", password=OWNER_PASSWORD)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "INVALID_CREDENTIALS")
    again = await failure_of(mesh.client.stub.DeleteUser(
        tenant_pb2.DeleteUserRequest(tenant_id=tenant_id, user_id=seller.user_id), metadata=bearer(owner)))
    assert (again.code, again.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    # The email is free again; the new user is another user (another id), whose token works.
    back = await mesh.add_user(tenant_id, "seller@shop.example", tenant_pb2.USER_ROLE_SELLER, token=owner)
    assert back.user_id != seller.user_id
    assert other.user_id != seller.user_id
    fresh = await mesh.client.login(tenant_id, "seller@shop.example", OWNER_PASSWORD)
    assert await _refused(mesh, fresh, tenant_id) == ""


async def test_a_suspended_tenants_tokens_are_refused_and_other_tenants_keep_working(mesh: Mesh) -> None:
    tenant_id, owner = await mesh.tenant_with_owner()
    other_id, other_owner = await mesh.tenant_with_owner()
    await mesh.client.stub.SuspendTenant(tenant_pb2.SuspendTenantRequest(tenant_id=tenant_id),
                                         metadata=bearer(mesh.admin))

    async def owner_refused() -> bool:
        return await _refused(mesh, owner, tenant_id) == "TENANT_SUSPENDED"

    await _eventually("the suspended tenant's owner token to be refused", owner_refused)
    assert await _refused(mesh, other_owner, other_id) == ""
    assert await _refused(mesh, mesh.admin, tenant_id) == "", "the platform admin is not of the suspended tenant"
    # One event per suspension: suspending again publishes nothing new.
    await mesh.client.stub.SuspendTenant(tenant_pb2.SuspendTenantRequest(tenant_id=tenant_id),
                                         metadata=bearer(mesh.admin))
    await asyncio.sleep(0.3)
    assert await published(mesh.settings, f"commerce.tenant.v1.tenant_suspended.{tenant_id}") == 1


async def test_a_verifier_started_after_the_revocation_still_refuses_the_token(mesh: Mesh) -> None:
    """A service (re)started later replays the revocations of the last token lifetime."""
    tenant_id, owner = await mesh.tenant_with_owner()
    seller = await mesh.add_user(tenant_id, "late@shop.example", tenant_pb2.USER_ROLE_SELLER, token=owner)
    token = await mesh.client.login(tenant_id, "late@shop.example", OWNER_PASSWORD)
    await mesh.client.stub.DeleteUser(tenant_pb2.DeleteUserRequest(tenant_id=tenant_id, user_id=seller.user_id),
                                      metadata=bearer(mesh.admin))

    async def refused_here() -> bool:
        return await _refused(mesh, token, tenant_id) == "USER_DELETED"

    await _eventually("the tenant service refusing the token", refused_here)
    store = KeyStore(mesh.settings.keys_dir)

    async def jwks() -> Sequence[Jwk]:
        return store.jwks()

    late = TokenVerifier(KeySet(jwks), mesh.settings.jwt_issuer, mesh.settings.jwt_audience,
                         revocations=revocation_feed(mesh.settings, f"late-{uuid.uuid4().hex[:6]}"))
    await late.start()
    try:
        async def refused_by_late() -> bool:
            try:
                await late.verify(token)
            except Unauthenticated as error:
                return error.reason == "USER_DELETED"
            return False

        await _eventually("a verifier started afterwards refusing the token", refused_by_late)
        assert (await late.verify(owner)).tenant_id == tenant_id
    finally:
        await late.stop()


async def test_user_events_are_written_with_the_change(mesh: Mesh) -> None:
    tenant_id, owner = await mesh.tenant_with_owner()
    schema = "t_" + tenant_id.replace("-", "_")
    user = await mesh.add_user(tenant_id, "evented@shop.example", tenant_pb2.USER_ROLE_SELLER, token=owner)
    await mesh.client.stub.DeleteUser(tenant_pb2.DeleteUserRequest(tenant_id=tenant_id, user_id=user.user_id),
                                      metadata=bearer(owner))

    async def all_published() -> bool:
        return await published(mesh.settings, f"commerce.tenant.v1.*.{tenant_id}", settle=0.1) == 4
    await _eventually("the tenant's four events on JetStream", all_published)
    assert await published(mesh.settings, f"commerce.tenant.v1.user_deleted.{tenant_id}") == 1
    # the owner and this seller
    assert await published(mesh.settings, f"commerce.tenant.v1.user_registered.{tenant_id}") == 2
    assert await published(mesh.settings, f"commerce.tenant.v1.tenant_created.{tenant_id}") == 1
    # nothing left waiting in either outbox
    assert await count_rows(mesh.settings, f"SELECT count(*) FROM {schema}.outbox") == 0
    assert tenant_events_pb2.UserDeleted.DESCRIPTOR.fields_by_name["user_id"]


async def test_who_may_delete_whom(mesh: Mesh) -> None:
    tenant_id, owner = await mesh.tenant_with_owner()
    other_id, other_owner = await mesh.tenant_with_owner()
    seller = await mesh.add_user(tenant_id, "s@shop.example", tenant_pb2.USER_ROLE_SELLER, token=owner)
    seller_token = await mesh.client.login(tenant_id, "s@shop.example", OWNER_PASSWORD)
    me = await mesh.client.stub.Login(tenant_pb2.LoginRequest(tenant_id=tenant_id, email="owner@shop.example",
                                                              password=OWNER_PASSWORD))

    def delete(tenant: str, user_id: str, token: str) -> Awaitable[object]:
        request = tenant_pb2.DeleteUserRequest(tenant_id=tenant, user_id=user_id)
        call: Awaitable[object] = mesh.client.stub.DeleteUser(request, metadata=bearer(token))
        return call

    # Another tenant's owner: the tenant is not there for them (no hint the user exists).
    failure = await failure_of(delete(tenant_id, seller.user_id, other_owner))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "TENANT_NOT_FOUND")
    failure = await failure_of(delete(other_id, seller.user_id, other_owner))
    assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "USER_NOT_FOUND")
    # A seller may not delete anyone (the declared roles are admin and owner).
    failure = await failure_of(delete(tenant_id, seller.user_id, seller_token))
    assert failure.code == grpc.StatusCode.PERMISSION_DENIED
    # An owner cannot delete themselves.
    failure = await failure_of(delete(tenant_id, me.user.user_id, owner))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CANNOT_DELETE_SELF")
    # Bad ids name the field; nothing is deleted.
    failure = await failure_of(delete(tenant_id, "not-a-uuid", owner))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["user_id"])
    failure = await failure_of(delete("", "", owner))
    assert (failure.code, sorted(failure.fields)) == (grpc.StatusCode.INVALID_ARGUMENT, ["tenant_id", "user_id"])
    assert await _refused(mesh, seller_token, tenant_id) == ""
    # The admin may; the id may be given in upper case.
    await delete(tenant_id, seller.user_id.upper(), mesh.admin)
    failure = await failure_of(delete(tenant_id, seller.user_id, owner))
    assert failure.code == grpc.StatusCode.NOT_FOUND
