"""Domain objects <-> commerce.tenant.v1 messages (nothing else)."""

from __future__ import annotations

from datetime import UTC, datetime

from commerce.tenant.v1 import tenant_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from services.tenant.domain.tenant import Tenant, TenantState
from services.tenant.domain.user import Role, User
from services.tenant.issuer import IssuedToken

_STATES = {
    TenantState.PROVISIONING: tenant_pb2.TENANT_STATE_PROVISIONING,
    TenantState.ACTIVE: tenant_pb2.TENANT_STATE_ACTIVE,
    TenantState.SUSPENDED: tenant_pb2.TENANT_STATE_SUSPENDED,
}
_ROLES = {
    Role.OWNER: tenant_pb2.USER_ROLE_OWNER,
    Role.SELLER: tenant_pb2.USER_ROLE_SELLER,
    Role.CUSTOMER: tenant_pb2.USER_ROLE_CUSTOMER,
}
_ROLES_BACK: dict[int, Role] = {int(v): k for k, v in _ROLES.items()}


def timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def tenant_message(tenant: Tenant) -> tenant_pb2.Tenant:
    return tenant_pb2.Tenant(
        name=f"tenants/{tenant.tenant_id}", tenant_id=tenant.tenant_id, display_name=tenant.display_name,
        currency_code=tenant.currency_code, state=_STATES[tenant.state],
        create_time=timestamp(tenant.create_time), update_time=timestamp(tenant.update_time),
    )


def user_message(user: User) -> tenant_pb2.User:
    return tenant_pb2.User(
        name=f"tenants/{user.tenant_id}/users/{user.user_id}", user_id=user.user_id, tenant_id=user.tenant_id,
        email=user.email, display_name=user.display_name,
        role=_ROLES[user.role] if user.role is not None else tenant_pb2.USER_ROLE_UNSPECIFIED,
        create_time=timestamp(user.create_time),
    )


def user_from_message(message: tenant_pb2.User) -> User:
    return User(message.user_id, message.tenant_id, message.email, message.display_name, role_of(message.role),
                message.create_time.ToDatetime(tzinfo=UTC))


def role_of(value: int) -> Role | None:
    """The domain role of a request's UserRole (None when unspecified or unknown)."""
    return _ROLES_BACK.get(value)


def login_response(token: IssuedToken, user: User) -> tenant_pb2.LoginResponse:
    return tenant_pb2.LoginResponse(access_token=token.token, token_type="Bearer", expires_in=token.expires_in,
                                    user=user_message(user))


def guest_response(token: IssuedToken) -> tenant_pb2.CreateGuestTokenResponse:
    return tenant_pb2.CreateGuestTokenResponse(access_token=token.token, token_type="Bearer",
                                               expires_in=token.expires_in, subject=token.subject)


def jwks_response(keys: list[dict[str, str]]) -> tenant_pb2.GetJwksResponse:
    return tenant_pb2.GetJwksResponse(keys=[tenant_pb2.Jwk(**k) for k in keys])
