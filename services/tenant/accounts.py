"""User use cases: staff created by an admin or owner, customer self-registration,
login and guest tokens.

Login answers every wrong tenant, unknown email and wrong password alike
(UNAUTHENTICATED, reason INVALID_CREDENTIALS) and spends one password
verification on each, so neither the answer nor its timing tells which part
was wrong. Only a caller whose credentials verified learns that their tenant is
suspended (UNAUTHENTICATED, reason TENANT_SUSPENDED).
"""

from __future__ import annotations

from commerce.tenant.v1 import tenant_pb2

from services.runtime.context import PLATFORM_TENANT, Caller
from services.runtime.db import Database
from services.runtime.errors import AlreadyExists, FailedPrecondition, NotFound, Unauthenticated
from services.runtime.idempotency import IdempotencyKey, remember, replay
from services.tenant import events
from services.tenant.convert import user_from_message, user_message
from services.tenant.domain.access import check_can_manage_users
from services.tenant.domain.tenant import check_accepts_logins, check_accepts_new_staff, check_serves_shoppers
from services.tenant.domain.user import Credentials, NewUser, User
from services.tenant.issuer import IssuedToken, TokenIssuer
from services.tenant.passwords import Passwords
from services.tenant.store import users as users_store
from services.tenant.store.platform import PlatformStore

CREATE_USER = "CreateUser"
REGISTER_CUSTOMER = "RegisterCustomer"


def invalid_credentials() -> Unauthenticated:
    return Unauthenticated("wrong tenant, email or password", reason="INVALID_CREDENTIALS")


class Accounts:
    def __init__(self, db: Database, platform: PlatformStore, passwords: Passwords, issuer: TokenIssuer) -> None:
        self._db = db
        self._platform = platform
        self._passwords = passwords
        self._issuer = issuer

    async def create_staff(self, caller: Caller, tenant_id: str, new: NewUser, key: IdempotencyKey | None) -> User:
        check_can_manage_users(caller, tenant_id)
        check_accepts_new_staff(await self._platform.get_tenant(tenant_id))
        return await self._add_user(tenant_id, new, key, tenant_pb2.CreateUserResponse)

    async def register_customer(self, tenant_id: str, new: NewUser, key: IdempotencyKey | None) -> User:
        check_serves_shoppers(await self._platform.get_tenant(tenant_id))
        return await self._add_user(tenant_id, new, key, tenant_pb2.RegisterCustomerResponse)

    async def _add_user(self, tenant_id: str, new: NewUser, key: IdempotencyKey | None,
                        response_type: type[tenant_pb2.CreateUserResponse] | type[tenant_pb2.RegisterCustomerResponse],
                        ) -> User:
        password_hash = await self._passwords.hash(new.password)  # before holding a connection
        async with self._db.tenant(tenant_id) as conn:
            previous = await replay(conn, key, response_type)
            if previous is not None:
                return user_from_message(previous.user)
            user = await users_store.insert_user(conn, tenant_id, new, password_hash)
            if user is None:
                raise AlreadyExists("a user with this email already exists in this tenant", reason="EMAIL_TAKEN",
                                    metadata={"tenant_id": tenant_id})
            await events.user_registered(conn, user)
            await remember(conn, key, response_type(user=user_message(user)))
        return user

    async def delete_user(self, caller: Caller, tenant_id: str, user_id: str) -> None:
        """Removes the user. UserDeleted (same transaction) makes every service refuse the
        tokens they hold. An owner cannot delete themselves (the tenant would lose its owner
        by accident); another owner or an admin can."""
        check_can_manage_users(caller, tenant_id)
        if caller.subject == user_id and caller.tenant_id == tenant_id:
            raise FailedPrecondition("you cannot delete yourself; ask another owner or an admin",
                                     reason="CANNOT_DELETE_SELF")
        async with self._db.tenant(tenant_id) as conn:
            if not await users_store.delete_user(conn, user_id):
                raise NotFound("user not found", reason="USER_NOT_FOUND")
            await events.user_deleted(conn, tenant_id, user_id)

    async def login(self, tenant_id: str, credentials: Credentials) -> tuple[IssuedToken, User]:
        if tenant_id == PLATFORM_TENANT:
            return await self._admin_login(credentials)
        tenant = await self._platform.get_tenant(tenant_id)
        record = None
        if tenant is not None:
            try:
                async with self._db.tenant_read(tenant_id) as conn:
                    record = await users_store.user_by_email(conn, tenant_id, credentials.email)
            except NotFound:  # schema not there yet (still provisioning)
                record = None
        ok = await self._passwords.verify(record.password_hash if record else None, credentials.password)
        if tenant is None or record is None or not ok:
            raise invalid_credentials()
        check_accepts_logins(tenant)
        if self._passwords.needs_rehash(record.password_hash):
            new_hash = await self._passwords.hash(credentials.password)
            async with self._db.tenant(tenant_id) as conn:
                await users_store.set_password_hash(conn, record.user.user_id, new_hash)
        user = record.user
        assert user.role is not None
        return self._issuer.for_user(user.user_id, tenant_id, user.role.value), user

    async def _admin_login(self, credentials: Credentials) -> tuple[IssuedToken, User]:
        admin = await self._platform.admin_by_email(credentials.email)
        ok = await self._passwords.verify(admin.password_hash if admin else None, credentials.password)
        if admin is None or not ok:
            raise invalid_credentials()
        if self._passwords.needs_rehash(admin.password_hash):
            await self._platform.set_admin_password(admin.admin_id, await self._passwords.hash(credentials.password))
        user = User(admin.admin_id, PLATFORM_TENANT, admin.email, admin.display_name, None, admin.create_time)
        return self._issuer.for_admin(admin.admin_id), user

    async def guest_token(self, tenant_id: str) -> IssuedToken:
        check_serves_shoppers(await self._platform.get_tenant(tenant_id))
        return self._issuer.for_guest(tenant_id)

