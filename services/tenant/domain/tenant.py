"""The tenant aggregate: what a valid new tenant is, and the states it moves through.

PROVISIONING -> ACTIVE once its schema exists in every service database;
any state -> SUSPENDED by the platform admin. A tenant suspended before its
provisioning finished stays SUSPENDED (provisioning still completes).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, replace
from datetime import datetime

from services.runtime.context import PLATFORM_TENANT
from services.runtime.currencies import is_circulating
from services.runtime.errors import FailedPrecondition, NotFound, Unauthenticated, Unavailable
from services.runtime.validation import Violations

TENANT_ID = re.compile(r"^[a-z][a-z0-9-]{2,31}$")
DISPLAY_NAME_MAX = 200
TENANT_ID_RULE = "3-32 characters: lower-case letters, digits and '-', starting with a letter"


class TenantState(enum.Enum):
    PROVISIONING = "PROVISIONING"
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


@dataclass(frozen=True)
class NewTenant:
    tenant_id: str
    display_name: str
    currency_code: str


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    display_name: str
    currency_code: str
    state: TenantState
    provisioned: bool
    create_time: datetime
    update_time: datetime

    def provisioning_done(self) -> Tenant:
        state = TenantState.ACTIVE if self.state is TenantState.PROVISIONING else self.state
        return replace(self, state=state, provisioned=True)

    def suspended(self) -> Tenant:
        return replace(self, state=TenantState.SUSPENDED)


def check_tenant_id(violations: Violations, field: str, value: str) -> str:
    """A tenant id as a request names it (``platform`` is not a tenant)."""
    if not value:
        violations.add(field, "is required")
    elif not TENANT_ID.fullmatch(value):  # at most 32 characters
        violations.add(field, TENANT_ID_RULE)
    return value


def new_tenant(tenant_id: str, display_name: str, currency_code: str, *, prefix: str = "tenant.") -> NewTenant:
    v = Violations()
    check_tenant_id(v, f"{prefix}tenant_id", tenant_id)
    if tenant_id == PLATFORM_TENANT:
        v.add(f"{prefix}tenant_id", f'"{PLATFORM_TENANT}" is reserved')
    v.text(f"{prefix}display_name", display_name, max_len=DISPLAY_NAME_MAX, trimmed=True)
    if not currency_code:
        v.add(f"{prefix}currency_code", "is required")
    elif not is_circulating(currency_code):
        v.add(f"{prefix}currency_code", "must be an ISO 4217 currency code in upper case, e.g. USD")
    v.raise_if_any()
    return NewTenant(tenant_id, display_name, currency_code)


def tenant_id_of_request(tenant_id: str, field: str = "tenant_id") -> str:
    v = Violations()
    check_tenant_id(v, field, tenant_id)
    v.raise_if_any()
    return tenant_id


def tenant_not_found() -> NotFound:
    return NotFound("tenant not found", reason="TENANT_NOT_FOUND")


def _suspended(tenant: Tenant) -> FailedPrecondition:
    return FailedPrecondition("this tenant is suspended", reason="TENANT_SUSPENDED",
                              metadata={"tenant_id": tenant.tenant_id})


def check_serves_shoppers(tenant: Tenant | None) -> Tenant:
    """Customer registration and guest tokens: only for an ACTIVE tenant."""
    if tenant is None or tenant.state is TenantState.PROVISIONING:
        raise tenant_not_found()
    if tenant.state is TenantState.SUSPENDED:
        raise _suspended(tenant)
    return tenant


def check_accepts_new_staff(tenant: Tenant | None) -> Tenant:
    """Creating owners and sellers: the tenant must be provisioned and not suspended."""
    if tenant is None:
        raise tenant_not_found()
    if tenant.state is TenantState.SUSPENDED:
        raise _suspended(tenant)
    if tenant.state is TenantState.PROVISIONING:
        raise Unavailable("this tenant is still being provisioned; retry shortly", reason="TENANT_PROVISIONING",
                          metadata={"tenant_id": tenant.tenant_id})
    return tenant


def check_accepts_logins(tenant: Tenant) -> Tenant:
    """Checked after the credentials verified, so only their holder learns why."""
    if tenant.state is TenantState.SUSPENDED:
        raise Unauthenticated("this tenant is suspended; its users cannot log in", reason="TENANT_SUSPENDED",
                              metadata={"tenant_id": tenant.tenant_id})
    if tenant.state is TenantState.PROVISIONING:
        raise Unavailable("this tenant is still being provisioned; retry shortly", reason="TENANT_PROVISIONING",
                          metadata={"tenant_id": tenant.tenant_id})
    return tenant
